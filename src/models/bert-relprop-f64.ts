/**
 * The BERT relevance pass in float64 on one sample's unrounded forward pass (`--forward f64`): the walk of
 * `BertForSequenceClassification.relprop` (src/models/bert.ts, docs/methods.md#bert-relevance-walk), step for step,
 * with the float64 rules of src/rules/float64.ts, every denominator the forward's own float64 value
 * (`HostBertTrace.exact`, src/models/bert-f64.ts), as src/models/vit-relprop-f64.ts does for the ViT.
 *
 * Why: the rules divide by sums that cancel (the residual adds, the attention products, full LRP's sign splits), so a
 * float32 relevance pass, even on a float64 forward rounded once, leaves its outputs float32 noise away from the
 * float64 ones; in float64, rounded once at the end, they are as close to the float64 truth as float32 can hold them.
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import {
  cloneRuleF64,
  type HostRuleSet,
  poolRuleF64,
  productRuleF64,
  productTransposedRuleF64,
} from '../rules/float64.js';
import { type BertForSequenceClassification, checkLayer } from './bert.js';
import { bertHostWeights, type ExactLayerKey, type HostBertTrace } from './bert-f64.js';
import { mergeHeads, splitHeads } from './host-f64.js';

export interface ExactBertRelevance {
  /** Per layer l ≥ stop, the relevance of the attention probabilities (after the halving) [H, N, N]. */
  attnCam: (Float64Array | undefined)[];
  /** With stop 'input': the relevance at the input of layer 0 (the embedding output) [N, D]. */
  input?: Float64Array;
}

/**
 * Relevance of sample `b` of the trace (a `bertForwardF64` trace, its float64 values in `host.exact`) from the
 * one-hot seed (value 1, quirk Q8) at class `cls` of the logits, down to the attention of layer `stop` (inclusive;
 * the rest of that layer is not visited) or, with 'input', through every layer to the input of layer 0.
 */
export async function bertRelpropF64(
  model: BertForSequenceClassification,
  host: HostBertTrace,
  b: number,
  cls: number,
  rules: HostRuleSet,
  stop: number | 'input',
  matmul: F64MatMul,
): Promise<ExactBertRelevance> {
  const c = model.config;
  const { batch: B, seqLen: N } = host;
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const C = c.num_labels;
  const d = model.headDim;
  const depth = c.num_hidden_layers;
  const stopLayer = stop === 'input' ? 0 : stop;
  checkLayer(stopLayer, depth);
  if (!Number.isInteger(b) || b < 0 || b >= B) throw new Error(`sample ${b} is out of range: the batch has ${B}`);
  if (!Number.isInteger(cls) || cls < 0 || cls >= C) throw new Error(`class ${cls} is out of range: ${C} labels`);
  const ex = host.exact;
  if (!ex || ex.layers.length !== depth || !ex.mask) {
    throw new Error('the trace holds no float64 values of every layer');
  }
  const w = await bertHostWeights(model);
  /** A copy of sample b's part of a batch array (every one is sample-major); a copy, not a view, for the products. */
  const own = (x: Float64Array) => x.slice((b * x.length) / B, ((b + 1) * x.length) / B);
  const half = (x: Float64Array) => x.map((v) => v * 0.5);

  // classifier (X = pooled output after tanh) → tanh (identity) → pooler dense (X = h_L[:, 0]) → pool → token 0.
  const seed = new Float64Array(C);
  seed[cls] = 1;
  const rPooled = await rules.linear(w.classifier, own(ex.pooled), seed, own(ex.classifierP));
  const rCls = await rules.linear(w.pooler, own(ex.cls), rPooled, own(ex.poolerP));
  let R: Float64Array = new Float64Array(N * D);
  R.set(poolRuleF64(own(ex.cls), rCls));
  // The additive mask of this sample's key positions, expanded to the scores' shape [H, N, N] (the reference
  // broadcasts it (1, 1, 1, N) against (1, H, N, N), so the "ours" rescaling's mask total is over that shape too).
  const maskRow = own(ex.mask);
  const maskHNN = new Float64Array(H * N * N);
  for (let i = 0; i < maskHNN.length; i++) maskHNN[i] = maskRow[i % N]!;

  const attnCam: (Float64Array | undefined)[] = new Array(depth).fill(undefined);
  for (let l = depth - 1; l >= stopLayer; l--) {
    const t = Object.fromEntries(Object.entries(ex.layers[l]!).map(([k, v]) => [k, own(v)])) as Record<
      ExactLayerKey,
      Float64Array
    >;
    const lw = w.layers[l]!;
    // BertOutput: LN (identity) → Add [dense₂ output, a] → dense₂ (X = GELU output) → GELU (identity)
    // → dense₁ (X = a); then the Clone of a.
    const [rM, rRes2] = rules.add(t.m, t.a, R, t.r2);
    const rG = await rules.linear(lw.out, t.g, rM, t.outP);
    const rA1 = await rules.linear(lw.inter, t.a, rG, t.interP);
    const rA = cloneRuleF64(t.a, [rA1, rRes2]);
    // BertSelfOutput: LN (identity) → Add [dense(ctx), h] → dense (X = ctx).
    const [rSa, rRes1] = rules.add(t.sa, t.h, rA, t.r1);
    const rCtx = splitHeads(await rules.linear(lw.attnOut, t.ctx, rSa, t.attnOutP), 1, H, N, d);
    // matmul2 (P·v, Z the forward's P·v), both halves ÷2; attn_cam = R_P.
    const [rP, rV] = (await productRuleF64(matmul, t.P, t.v, rCtx, splitHeads(t.ctx, 1, H, N, d), [H, N, N, d])).map(
      half,
    ) as [Float64Array, Float64Array];
    attnCam[l] = rP;
    if (l === stop) return { attnCam };
    // softmax (identity) → Add [scores, mask] (z = the softmax's input): keep the scores' share.
    const [rS] = rules.add(t.scores, maskHNN, rP, t.masked);
    // The /√d is not a module: the scores' relevance is that of q·kᵀ. matmul1 on (q, kᵀ), halves ÷2.
    const [rQ, rK] = (await productTransposedRuleF64(matmul, t.q, t.k, rS, t.qk, [H, N, d])).map(half) as [
      Float64Array,
      Float64Array,
    ];
    const rHq = await rules.linear(lw.query, t.h, mergeHeads(rQ, 1, H, N, d), t.queryP);
    const rHk = await rules.linear(lw.key, t.h, mergeHeads(rK, 1, H, N, d), t.keyP);
    const rHv = await rules.linear(lw.value, t.h, mergeHeads(rV, 1, H, N, d), t.valueP);
    const rSelf = cloneRuleF64(t.h, [rHq, rHk, rHv]);
    // BertAttention's Clone of h: (self-attention branch, residual share).
    R = cloneRuleF64(t.h, [rSelf, rRes1]);
  }
  return { attnCam, input: R };
}
