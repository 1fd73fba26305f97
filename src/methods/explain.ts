import * as tf from '@tensorflow/tfjs';
import type { VisionTransformer } from '../models/vit.js';
import { type ClassRequest, PassContext } from './pass.js';
import { minMaxInPlace, upsampleBilinearTorch } from './postprocess.js';
import type { ExplanationMethod, HeadKind, MethodOptions } from './types.js';

export interface ExplainOptions {
  /** 'top' (default): each method's own model's argmax; or a class index (one, or one per sample). */
  classes?: ClassRequest;
  /** Default 1, as the reference benchmark scripts. */
  startLayer?: number;
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

export function methodOptions(model: VisionTransformer, opts: ExplainOptions): MethodOptions {
  const startLayer = opts.startLayer ?? 1;
  if (!Number.isInteger(startLayer) || startLayer < 0 || startLayer >= model.depth) {
    throw new Error(
      `--start-layer ${startLayer} is out of range: the model has ${model.depth} blocks (0 … ${model.depth - 1})`,
    );
  }
  return { startLayer };
}

/**
 * Explain a batch of normalised inputs [B, C, H, W] with several methods sharing one forward pass and
 * one backward/relevance pass per kind (see PassContext). A batch gives the same maps as B single runs.
 */
export function explain(
  model: VisionTransformer,
  input: tf.Tensor4D,
  methods: readonly ExplanationMethod[],
  opts: ExplainOptions = {},
): Explanation {
  const options = methodOptions(model, opts);
  const c = model.config;
  const B = input.shape[0];
  const warnings: string[] = [];
  // Everything runs in one tidy scope; only the outputs are kept.
  const results: { m: ExplanationMethod; raw: tf.Tensor }[] = [];
  let classes: Record<HeadKind, number[]> | undefined;
  const [logitsT, lrpLogitsT] = tf.tidy(() => {
    const ctx = new PassContext(model, input, opts.classes ?? 'top', methods, options);
    classes = ctx.classes;
    for (const m of methods) results.push({ m, raw: tf.keep(tf.reshape(m.compute(ctx, options), [B, -1])) });
    return [ctx.heads.classifier.logits, ctx.heads.lrp.logits];
  });
  const out = { logits: logitsT!, lrpLogits: lrpLogitsT!, classes: classes!, results };
  const rows = (t: tf.Tensor): Float32Array[] => {
    const data = t.dataSync() as Float32Array;
    const n = t.shape[1]!;
    return Array.from({ length: B }, (_, i) => data.slice(i * n, (i + 1) * n));
  };
  const logits = rows(out.logits);
  const methodsOut = out.results.map(({ m, raw }) => {
    const rawRows = rows(raw);
    // Upsampling and min–max on the host, bit for bit as torch does them (see postprocess.ts).
    const maps = rawRows.map((r) =>
      m.resolution === 'patches'
        ? upsampleBilinearTorch(r, model.geo.grid[0], model.geo.grid[1], c.patch_size)
        : Float32Array.from(r),
    );
    const constant = maps.map((map, i) => {
      const ok = minMaxInPlace(map);
      if (!ok) {
        warnings.push(
          `${m.name}: the map of input ${i} is constant; it is reported as all zeros (the reference would give NaN)`,
        );
      }
      return !ok;
    });
    return {
      method: m.name,
      classes: m.classFrom ? out.classes[m.classFrom] : null,
      raw: rawRows,
      rawShape: m.resolution === 'patches' ? [...model.geo.grid] : [c.img_size, c.img_size],
      map: maps,
      mapShape: [c.img_size, c.img_size],
      constant,
    };
  });
  const result: Explanation = {
    logits,
    lrpLogits: rows(out.lrpLogits),
    predicted: logits.map(argmax),
    methods: methodsOut,
    warnings,
  };
  tf.dispose([out.logits, out.lrpLogits, ...out.results.map((r) => r.raw)]);
  return result;
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}
