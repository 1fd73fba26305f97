import { hostReadable } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import type { BertForSequenceClassification } from '../models/bert.js';
import { forwardPrecision } from '../models/forward-precision.js';
import type { VisionTransformer } from '../models/vit.js';
import { argmax, bertFloat64, vitFloat64 } from './float64-passes.js';
import { bertPass, float64Values, type ModelPass, vitPass } from './model-pass.js';
import { type ClassRequest, PassContext } from './pass.js';
import { checkMethodOutput, checkNoNaN } from './plugins.js';
import { minMaxF64, minMaxInPlace, upsampleBilinearTorch } from './postprocess.js';
import type { ExplanationMethod, HeadKind, MethodOptions } from './types.js';

export interface ExplainOptions {
  /** 'top' (default): each method's own model's argmax; or a class index (one, or one per sample). */
  classes?: ClassRequest;
  /** First block of the rollouts; default: each method's reference default (ViT 1; BERT see the methods). */
  startLayer?: number;
  /**
   * With the float64 forward (`--forward f64`): the normalised input in float64, as a float64 reference computes it
   * from the image (normalizeCHWF64). Default: the values of the float32 input.
   */
  input64?: Float64Array;
}

export interface MethodMaps {
  method: string;
  /** Class explained per sample; null for class-independent methods (rollout, raw attention). */
  classes: number[] | null;
  /** Raw map per sample, before upsampling and normalisation, row-major. */
  raw: Float32Array[];
  rawShape: number[];
  /** Final map per sample at input resolution, min–max normalised to [0, 1]. */
  map: Float32Array[];
  mapShape: number[];
  /** Samples whose map was constant (the reference would give NaN); their final map is all zeros. */
  constant: boolean[];
}

export interface Explanation {
  /** Logits of the classifier (timm / ViT_new: final LayerNorm eps 1e-6), per sample. */
  logits: Float32Array[];
  /** Logits of the reference's LRP model files (final LayerNorm eps 1e-5, quirk Q1), per sample. */
  lrpLogits: Float32Array[];
  /** Argmax of `logits` per sample. */
  predicted: number[];
  methods: MethodMaps[];
  warnings: string[];
}

/**
 * Explain a batch of normalised images [B, C, H, W] with several methods sharing one forward pass and
 * one backward/relevance pass per kind (see PassContext). A batch gives the same maps as B single runs.
 * Maps are upsampled and min–max normalised bit for bit as the reference scripts do it.
 */
export async function explain(
  model: VisionTransformer,
  input: tf.Tensor4D,
  methods: readonly ExplanationMethod[],
  opts: ExplainOptions = {},
): Promise<Explanation> {
  const c = model.config;
  const size = [c.img_size, c.img_size];
  const B = input.shape[0];
  if (opts.input64 && opts.input64.length !== input.size) {
    throw new RangeError(`input64 has ${opts.input64.length} values, the input ${input.size}`);
  }
  const f64 =
    forwardPrecision() === 'f64'
      ? await vitFloat64(
          model,
          opts.input64 ?? ((await input.data()) as Float32Array),
          B,
          methods,
          { startLayer: opts.startLayer },
          opts.classes ?? 'top',
        )
      : undefined;
  return run(
    () => vitPass(model, input, f64?.trace, f64?.passes),
    input.shape[0],
    methods,
    opts,
    (m) => ({
      rawShape: m.resolution === 'patches' ? [...model.geo.grid] : size,
      mapShape: size,
      mapIsRaw: m.resolution !== 'patches',
      toMap: (raw) =>
        m.resolution === 'patches'
          ? upsampleBilinearTorch(raw, model.geo.grid[0], model.geo.grid[1], c.patch_size)
          : Float32Array.from(raw),
    }),
    f64?.classes,
  );
}

/**
 * Explain token sequences [B, N] (with their attention mask) for a BERT classifier. `raw` is the method's
 * per-token vector as the reference returns it, [CLS] and padding positions included; `map` is its
 * min–max normalisation (for display).
 */
export async function explainTokens(
  model: BertForSequenceClassification,
  inputIds: Int32Array,
  attentionMask: Int32Array | undefined,
  batch: number,
  seqLen: number,
  methods: readonly ExplanationMethod[],
  opts: ExplainOptions = {},
): Promise<Explanation> {
  const f64 =
    forwardPrecision() === 'f64'
      ? await bertFloat64(
          model,
          inputIds,
          attentionMask,
          batch,
          seqLen,
          methods,
          { startLayer: opts.startLayer },
          opts.classes ?? 'top',
        )
      : undefined;
  return run(
    () => bertPass(model, inputIds, attentionMask, batch, seqLen, f64?.trace, f64?.passes),
    batch,
    methods,
    opts,
    () => ({
      rawShape: [seqLen],
      mapShape: [seqLen],
      mapIsRaw: true,
      toMap: (raw) => Float32Array.from(raw),
    }),
    f64?.classes,
  );
}

interface ReadOut {
  rawShape: number[];
  mapShape: number[];
  /** Whether the final map is the raw map itself before normalisation (no upsampling). */
  mapIsRaw: boolean;
  /** The unnormalised final map of one sample's raw map. */
  toMap: (raw: Float32Array) => Float32Array;
}

/**
 * The classes to explain, when the top class must be known before the pass can go on and the backend cannot be
 * read synchronously (webgpu: a GPU buffer is only read asynchronously in Node). The forward pass then runs once
 * more to find the top class of each classifier tail; the maps are the same.
 */
async function topClassesFirst(
  makePass: () => ModelPass,
  request: ClassRequest,
): Promise<ClassRequest | { lrp: number[]; classifier: number[] }> {
  if (request !== 'top' || hostReadable()) return request;
  const [lrp, classifier] = tf.tidy(() => {
    const pass = makePass();
    return [tf.argMax(pass.logits('lrp'), 1), tf.argMax(pass.logits('classifier'), 1)];
  });
  try {
    return { lrp: Array.from(await lrp.data()), classifier: Array.from(await classifier.data()) };
  } finally {
    tf.dispose([lrp, classifier]);
  }
}

async function run(
  makePass: () => ModelPass,
  B: number,
  methods: readonly ExplanationMethod[],
  opts: ExplainOptions,
  readOut: (m: ExplanationMethod) => ReadOut,
  /** The classes per tail, when already decided (by the float64 passes). */
  decided?: Record<HeadKind, number[]>,
): Promise<Explanation> {
  const options: MethodOptions = { startLayer: opts.startLayer };
  const warnings: string[] = [];
  const request = decided ?? (await topClassesFirst(makePass, opts.classes ?? 'top'));
  // Everything runs in one tidy scope; only the outputs are kept.
  const results: { m: ExplanationMethod; raw: tf.Tensor; exact?: Float64Array }[] = [];
  let classes: Record<HeadKind, number[]> | undefined;
  const [logitsT, lrpLogitsT] = tf.tidy(() => {
    const ctx = new PassContext(makePass(), request, methods, options);
    classes = ctx.classes;
    for (const m of methods) {
      const out = m.compute(ctx, options);
      checkMethodOutput(m, out.size, B, readOut(m).rawShape);
      results.push({ m, raw: tf.keep(tf.reshape(out, [B, -1])), exact: float64Values(out) });
    }
    return [ctx.pass.logits('classifier'), ctx.pass.logits('lrp')];
  });
  const rows = async (t: tf.Tensor): Promise<Float32Array[]> => {
    const data = (await t.data()) as Float32Array;
    const n = t.shape[1]!;
    return Array.from({ length: B }, (_, i) => data.slice(i * n, (i + 1) * n));
  };
  const logits = await rows(logitsT!);
  const rawRowsAll = await Promise.all(results.map(({ raw }) => rows(raw)));
  const lrpLogits = await rows(lrpLogitsT!);
  const methodsOut = results.map(({ m, exact }, k) => {
    const rawRows = rawRowsAll[k]!;
    checkNoNaN(m, rawRows);
    const r = readOut(m);
    const maps = rawRows.map(r.toMap);
    const constant = maps.map((map, i) => {
      // A raw map held in float64 (a host pass's output, as it is) is normalised in float64 and rounded once.
      const map64 = exact && r.mapIsRaw ? minMaxF64(exact.subarray(i * map.length, (i + 1) * map.length)) : undefined;
      if (map64) map.set(map64);
      const ok = map64 !== undefined ? map64 !== null : minMaxInPlace(map);
      if (!ok)
        warnings.push(
          `${m.name}: the map of input ${i} is constant; it is reported as all zeros (the reference would give NaN)`,
        );
      return !ok;
    });
    return {
      method: m.name,
      classes: m.classFrom ? classes![m.classFrom] : null,
      raw: rawRows,
      rawShape: r.rawShape,
      map: maps,
      mapShape: r.mapShape,
      constant,
    };
  });
  const result: Explanation = {
    logits,
    lrpLogits,
    predicted: logits.map(argmax),
    methods: methodsOut,
    warnings,
  };
  tf.dispose([logitsT!, lrpLogitsT!, ...results.map((x) => x.raw)]);
  return result;
}
