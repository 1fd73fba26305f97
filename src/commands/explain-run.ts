import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import {
  decodeImage,
  normalizeCHW,
  normalizeCHWF64,
  type RgbImage,
  resizeRgb,
  toUnitCHW,
  unitCHWToRgb,
} from '../data/image.js';
import { EMBEDDED } from '../embedded.js';
import * as tf from '../engine/tf.js';
import { FileFormatError } from '../formats/host-tensor.js';
import { readNpy } from '../formats/npy.js';
import { type Explanation, explain } from '../methods/explain.js';
import { loadMethods } from '../methods/plugins.js';
import { forwardPrecision } from '../models/forward-precision.js';
import type { VisionTransformer } from '../models/vit.js';
import type { VitConfig } from '../models/vit-config.js';
import { overlayHeatmap, writePanelsPng } from '../reports/overlay.js';
import { checkOutputPath } from '../util/files.js';
import { loadModelFromArgs, startBackend } from './common.js';
import type { ExplainArgs } from './explain.js';
import { runExplainText } from './explain-text.js';

/** A BERT run: text or token ids given, or a model config in HF BertConfig form. */
function isTextRun(args: ExplainArgs): boolean {
  if (args.text !== undefined || args['token-ids'] || args.vocab || args['model-dir']) return true;
  if (!args['model-config']) return false;
  try {
    const raw = JSON.parse(readFileSync(args['model-config'], 'utf8')) as Record<string, unknown>;
    return (
      raw.model_type === 'bert' ||
      (raw.hidden_size !== undefined && raw.embed_dim === undefined && raw.model === undefined)
    );
  } catch {
    return false; // the ViT config reader reports the problem
  }
}

/** A model input ready for the engine, plus the RGB picture to draw overlays on. */
interface PreparedInput {
  tensor: Float32Array; // [C, H, W], normalised
  /** The same in float64 (a float64 .npy, or normalizeCHWF64 of the image with --forward f64). */
  tensor64?: Float64Array;
  picture: RgbImage; // model-size RGB
}

export async function prepareInput(file: string, cfg: VitConfig): Promise<PreparedInput> {
  const size = { height: cfg.img_size, width: cfg.img_size };
  if (extname(file).toLowerCase() === '.npy') {
    const t = readNpy(file);
    const shape = t.shape.length === 4 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
    const want = [cfg.in_chans, cfg.img_size, cfg.img_size];
    if (shape.length !== 3 || shape.some((s, i) => s !== want[i])) {
      throw new FileFormatError(
        file,
        `expected a normalised float tensor of shape [1,${want}] or [${want}], found [${t.shape}]`,
      );
    }
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) {
      throw new FileFormatError(file, 'expected a float32 (or float64) array');
    }
    const tensor = Float32Array.from(t.data);
    const tensor64 = t.data instanceof Float64Array ? t.data : undefined;
    if (tensor.some((v) => !Number.isFinite(v)))
      throw new FileFormatError(file, 'the tensor contains NaN or infinite values');
    return { tensor, tensor64, picture: denormalize(tensor, cfg) };
  }
  const rgb = await decodeImage(file);
  const unit = toUnitCHW(rgb, size);
  return {
    tensor: normalizeCHW(unit, cfg.mean, cfg.std),
    tensor64: forwardPrecision() === 'f64' ? normalizeCHWF64(unit, cfg.mean, cfg.std) : undefined,
    picture: resizeRgb(rgb, size),
  };
}

/** Undo the normalisation of a [C,H,W] tensor into an RGB picture (for overlays of .npy inputs). */
function denormalize(chw: Float32Array, cfg: VitConfig): RgbImage {
  const n = cfg.img_size * cfg.img_size;
  const unit = Array.from(chw, (v, j) => {
    const ch = Math.floor(j / n);
    return v * cfg.std[ch]! + cfg.mean[ch]!;
  });
  return unitCHWToRgb(unit, cfg.img_size, cfg.img_size, cfg.in_chans);
}

export interface ExplainJson {
  backend: string;
  model: { name: string; config: VitConfig };
  input: string;
  logits: number[];
  lrpLogits: number[];
  predicted: number;
  startLayer: number;
  methods: Record<
    string,
    { class: number | null; raw: number[]; rawShape: number[]; map: number[]; mapShape: number[] }
  >;
  warnings: string[];
}

/** The per-method part of the JSON output, shared by the image and text forms: first sample, flat arrays. */
export function methodsJson(ex: Explanation): ExplainJson['methods'] {
  return Object.fromEntries(
    ex.methods.map((m) => [
      m.method,
      {
        class: m.classes ? m.classes[0]! : null,
        raw: Array.from(m.raw[0]!),
        rawShape: m.rawShape,
        map: Array.from(m.map[0]!),
        mapShape: m.mapShape,
      },
    ]),
  );
}

export function explanationJson(
  ex: Explanation,
  model: VisionTransformer,
  backend: string,
  input: string,
  startLayer: number,
): ExplainJson {
  return {
    backend,
    model: { name: model.config.name, config: model.config },
    input,
    logits: Array.from(ex.logits[0]!),
    lrpLogits: Array.from(ex.lrpLogits[0]!),
    predicted: ex.predicted[0]!,
    startLayer,
    methods: methodsJson(ex),
    warnings: ex.warnings,
  };
}

function writeOutput(file: string, data: string | Uint8Array): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, data);
  } catch (e) {
    throw new FileFormatError(file, `cannot write output (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

export async function runExplain(
  args: ExplainArgs,
  log: (s: string) => void = (s) => console.log(s),
): Promise<ExplainJson> {
  // Outputs are checked before the model loads: a path that cannot be written fails now, not after the work.
  if (args.json && args.json !== '-') checkOutputPath(args.json, 'file', '--json');
  if (args.out) checkOutputPath(args.out, 'file', '--out');
  if (args.html) checkOutputPath(args.html, 'file', '--html');
  if (isTextRun(args)) return (await runExplainText(args, log)) as ExplainJson;
  const toStdout = args.json === '-';
  const say = toStdout ? (s: string) => process.stderr.write(`${s}\n`) : log;
  const { methods } = await loadMethods(args.method);
  const backend = await startBackend(args.backend, say);
  const { model } = loadModelFromArgs(args, say);
  const inputFile = args.input ?? EMBEDDED.sampleImage;
  if (!args.input) say(`input: embedded sample image (${inputFile})`);
  const prepared = await prepareInput(inputFile, model.config);
  const c = model.config;
  const input = tf.tensor4d(prepared.tensor, [1, c.in_chans, c.img_size, c.img_size]);
  const ex = await explain(model, input, methods, {
    classes: args.class ?? 'top',
    startLayer: args['start-layer'],
    input64: prepared.tensor64,
  });
  input.dispose();
  const logits = ex.logits[0]!;
  const top5 = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
  say(`model: ${c.name} (D=${c.embed_dim}, depth ${c.depth}, ${c.num_heads} heads, ${c.num_classes} classes)`);
  say(`predicted class: ${ex.predicted[0]}  top-5: ${top5.map((k) => `${k} (${logits[k]!.toFixed(3)})`).join(', ')}`);
  for (const m of ex.methods) {
    const raw = m.raw[0]!;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const v of raw) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    say(
      `  ${m.method.padEnd(24)} class ${m.classes ? m.classes[0] : '-'}  raw [${m.rawShape.join('×')}] in [${lo.toPrecision(4)}, ${hi.toPrecision(4)}]`,
    );
  }
  for (const w of ex.warnings) process.stderr.write(`warning: ${w}\n`);
  const json = explanationJson(ex, model, backend.name, inputFile, args['start-layer'] ?? 1);
  if (args.json) {
    const text = `${JSON.stringify(json)}\n`;
    if (toStdout) process.stdout.write(text);
    else {
      writeOutput(args.json, text);
      say(`wrote ${args.json}`);
    }
  }
  if (args.out) {
    const { width, height, data } = prepared.picture;
    const panels = [
      { title: `input (pred ${ex.predicted[0]})`, rgb: data, width, height },
      ...ex.methods.map((m) => ({
        title: `${m.method}${m.classes ? ` (class ${m.classes[0]})` : ''}`,
        rgb: overlayHeatmap(data, m.map[0]!, width, height),
        width,
        height,
      })),
    ];
    try {
      mkdirSync(dirname(args.out), { recursive: true });
      await writePanelsPng(args.out, panels);
    } catch (e) {
      throw new FileFormatError(
        args.out,
        `cannot write the overlay PNG (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    say(`wrote ${args.out}`);
  }
  return json;
}
