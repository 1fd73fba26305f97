/**
 * `--forward f64` for a batch: the forward pass and the passes the methods need (`passPlan`, as the PassContext will
 * ask for them) run on the host in float64 before the shared pass (src/methods/pass.ts) serves them to the methods as
 * float32 tensors, each value rounded once. The classes are decided here, from the float64 logits rounded once (the
 * values the pass's logits hold), and the PassContext gets them as fixed classes, so the host passes and the methods
 * explain the same ones.
 */
import { f64Products } from '../engine/f64-matmul.js';
import type { BertForSequenceClassification } from '../models/bert.js';
import { bertAttentionGradientsF64 } from '../models/bert-backward-f64.js';
import { bertForwardF64, type HostBertTrace } from '../models/bert-f64.js';
import { bertRelpropF64 } from '../models/bert-relprop-f64.js';
import type { HostMaps } from '../models/host-f64.js';
import type { VisionTransformer } from '../models/vit.js';
import { vitAttentionGradientsF64 } from '../models/vit-backward-f64.js';
import { type HostVitTrace, vitForwardF64 } from '../models/vit-f64.js';
import { vitRelpropF64 } from '../models/vit-relprop-f64.js';
import { hostRuleSets } from '../rules/float64.js';
import type { RuleSetName } from '../rules/types.js';
import type { HostPasses } from './model-pass.js';
import { type ClassRequest, passPlan, resolveClasses } from './pass.js';
import type { ExplanationMethod, HeadKind, MethodOptions } from './types.js';

/** A batch's float64 forward trace, the passes computed from it, and the classes they explain. */
export interface Float64Batch<T> {
  trace: T;
  passes: HostPasses;
  classes: Record<HeadKind, number[]>;
}

/**
 * ViT: the forward, backward and relevance passes (both rule sets) in float64, one sample at a time (a ViT-B/16 pass
 * in float64 holds ≈ 350 MB per image).
 */
export async function vitFloat64(
  model: VisionTransformer,
  input: Float32Array | Float64Array,
  B: number,
  methods: readonly ExplanationMethod[],
  options: MethodOptions,
  request: ClassRequest,
): Promise<Float64Batch<HostVitTrace>> {
  const { matmul } = await f64Products();
  const c = model.config;
  const plan = passPlan(methods, { family: 'vit', depth: c.depth }, options);
  const rules = hostRuleSets(matmul);
  const fixed = request === 'top' ? undefined : resolveClasses(request, () => [], B, c.num_classes);
  const classes: Record<HeadKind, number[]> = { lrp: [], classifier: [] };
  const relevance: Partial<Record<RuleSetName, HostMaps>> = {};
  const gradients: Partial<Record<HeadKind, HostMaps>> = {};
  const trace = await vitForwardF64(model, input, B, matmul, async (sample, b) => {
    for (const head of ['lrp', 'classifier'] as const)
      classes[head][b] = fixed ? fixed[b]! : argmax(Float32Array.from(sample.heads[head].logits));
    for (const [head, downTo] of plan.gradients) {
      const g = await vitAttentionGradientsF64(model, sample, head, classes[head][b]!, downTo, matmul);
      place((gradients[head] ??= { to: downTo, attn: g.attn.map(() => undefined) }), g.attn, g.input, b, B);
    }
    for (const [name, stop] of plan.relevance) {
      const r = await vitRelpropF64(
        model,
        sample,
        classes.lrp[b]!,
        rules[name],
        stop === 'input' ? 'pixels' : stop,
        matmul,
      );
      const maps = (relevance[name] ??= { to: stop, attn: r.attnCam.map(() => undefined) });
      place(maps, r.attnCam, r.pixels, b, B);
      if (r.pixels) (maps.input64 ??= new Float64Array(B * r.pixels.length)).set(r.pixels, b * r.pixels.length);
    }
  });
  return { trace, passes: { gradients, relevance }, classes };
}

/**
 * BERT: the forward, the backward passes and every relevance pass (both rule sets, sample by sample,
 * src/models/bert-relprop-f64.ts) in float64. One classifier tail: both heads explain the same class, and the
 * relevance passes start from it.
 */
export async function bertFloat64(
  model: BertForSequenceClassification,
  inputIds: Int32Array,
  attentionMask: Int32Array | undefined,
  B: number,
  N: number,
  methods: readonly ExplanationMethod[],
  options: MethodOptions,
  request: ClassRequest,
): Promise<Float64Batch<HostBertTrace>> {
  const { matmul } = await f64Products();
  const C = model.numLabels;
  const plan = passPlan(methods, { family: 'bert', depth: model.depth }, options);
  const trace = await bertForwardF64(model, inputIds, attentionMask, B, N, matmul);
  const top = () => Array.from({ length: B }, (_, b) => argmax(trace.logits.subarray(b * C, (b + 1) * C)));
  const cls = resolveClasses(request, top, B, C);
  const gradients: Partial<Record<HeadKind, HostMaps>> = {};
  for (const [head, downTo] of plan.gradients) {
    const seed = new Float64Array(B * C);
    cls.forEach((k, b) => {
      seed[b * C + k] = 1;
    });
    gradients[head] = await bertAttentionGradientsF64(model, trace, seed, downTo, matmul);
  }
  const rules = hostRuleSets(matmul);
  const relevance: Partial<Record<RuleSetName, HostMaps>> = {};
  for (const [name, stop] of plan.relevance) {
    const maps: HostMaps = { to: stop, attn: new Array(model.depth).fill(undefined) };
    for (let b = 0; b < B; b++) {
      const r = await bertRelpropF64(model, trace, b, cls[b]!, rules[name], stop, matmul);
      place(maps, r.attnCam, r.input, b, B); // input: [N, D] per sample, the batch's [B, N, D]
    }
    relevance[name] = maps;
  }
  return { trace, passes: { gradients, relevance }, classes: { lrp: cls, classifier: cls } };
}

/** One sample's pass (float64) into its slot of the batch's float32 arrays, each value rounded once. */
function place(
  maps: HostMaps,
  attn: (Float64Array | undefined)[],
  input: Float64Array | undefined,
  b: number,
  B: number,
): void {
  attn.forEach((a, l) => {
    if (a) (maps.attn[l] ??= new Float32Array(B * a.length)).set(a, b * a.length);
  });
  if (input) (maps.input ??= new Float32Array(B * input.length)).set(input, b * input.length);
}

/** Index of the first largest value (tf.argMax's choice). */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}
