/**
 * The BERT backward pass in float64 on the host, for the float64 forward (`--forward f64`, src/models/bert-f64.ts):
 * the arithmetic of `BertForSequenceClassification.attentionGradients` (src/models/bert.ts), step for step, on the
 * forward's unrounded float64 values (`HostBertTrace.exact`), each result rounded to float32 once at the end. The
 * float32 backward on the rounded trace carries float32 noise into the gradients (measured: BERT GradCAM up to
 * 2.1e-6 of its max from the official float64 output, where the official float32 code is within 8e-7).
 *
 * Products go through an F64MatMul; a Linear's g·W uses the host weight Wᵀ [in, out] transposed.
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import { type BertForSequenceClassification, checkLayer } from './bert.js';
import { bertHostWeights, type HostBertTrace } from './bert-f64.js';
import {
  add,
  f32,
  geluGradF64,
  type HostLinear,
  type HostMaps,
  layerNormBackwardF64,
  mergeHeads,
  softmaxBackwardRows,
  splitHeads,
  transposeGroups,
} from './host-f64.js';

/**
 * ∂⟨logits, seed⟩/∂P_l for layers l = depth−1 … downTo, in float64 from `host.exact` (a trace of
 * `bertForwardF64`), each rounded to float32 once: attn[l] [B·H, N, N] (undefined below downTo); with 'input', the
 * gradient at the embedding output [B·N, D]. seed: [B, C] row-major, usually one-hot rows. downTo 'input':
 * through every layer, and also the gradient at the embedding output.
 */
export async function bertAttentionGradientsF64(
  model: BertForSequenceClassification,
  host: HostBertTrace,
  seed: Float64Array,
  downTo: number | 'input',
  matmul: F64MatMul,
): Promise<HostMaps> {
  const c = model.config;
  const { batch: B, seqLen: N } = host;
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const C = c.num_labels;
  const d = model.headDim;
  const eps = c.layer_norm_eps;
  const depth = c.num_hidden_layers;
  const lowest = downTo === 'input' ? 0 : downTo;
  checkLayer(lowest, depth);
  if (seed.length !== B * C) throw new Error(`seed has ${seed.length} entries, expected ${B}×${C} = ${B * C}`);
  const ex = host.exact;
  if (!ex || ex.layers.length !== depth) throw new Error('the trace holds no float64 values of every layer');
  const w = await bertHostWeights(model);
  /** g [rows, out] → g·W [rows, in]. */
  const back = (g: Float64Array, l: HostLinear) =>
    matmul(g, l.Wt, 1, g.length / l.outDim, l.outDim, l.inDim, { transposed: true });
  const BH = B * H;

  // classifier → tanh' → pooler → token 0 of each sample.
  const gPooled = await back(seed, w.classifier);
  const gPre = new Float64Array(gPooled.length);
  for (let i = 0; i < gPre.length; i++) gPre[i] = gPooled[i]! * (1 - ex.pooled[i]! ** 2);
  const gCls = await back(gPre, w.pooler);
  let gx = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++) gx.set(gCls.subarray(b * D, (b + 1) * D), b * N * D);

  const attn: (Float32Array | undefined)[] = new Array(depth).fill(undefined);
  const sqrtD = Math.sqrt(d);
  for (let l = depth - 1; l >= lowest; l--) {
    const t = ex.layers[l]!;
    const lw = w.layers[l]!;
    // out = LN(out.dense(gelu(inter(a))) + a).
    const gr2 = layerNormBackwardF64(t.r2, gx, D, lw.outNorm[0], eps);
    const gz1 = await back(gr2, lw.out);
    const gelu1 = geluGradF64(t.z1);
    for (let i = 0; i < gz1.length; i++) gz1[i]! *= gelu1[i]!;
    const ga = add(gr2, await back(gz1, lw.inter));
    // a = LN(attnOut(ctx) + h).
    const gr1 = layerNormBackwardF64(t.r1, ga, D, lw.attnNorm[0], eps);
    const gctx = splitHeads(await back(gr1, lw.attnOut), B, H, N, d);
    const gP = await matmul(gctx, transposeGroups(t.v, BH, N, d), BH, N, d, N);
    attn[l] = f32(gP);
    if (l === downTo) break;
    const gv = await matmul(transposeGroups(t.P, BH, N, N), gctx, BH, N, N, d);
    // softmax backward; the mask add is transparent; then the division by √d.
    const gDots = softmaxBackwardRows(t.P, gP, N);
    for (let i = 0; i < gDots.length; i++) gDots[i]! /= sqrtD;
    const gq = await matmul(gDots, t.k, BH, N, N, d);
    const gk = await matmul(transposeGroups(gDots, BH, N, N), t.q, BH, N, N, d);
    const gh = Float64Array.from(gr1);
    for (const [gHeads, lin] of [
      [gq, lw.query],
      [gk, lw.key],
      [gv, lw.value],
    ] as const) {
      const part = await back(mergeHeads(gHeads, B, H, N, d), lin);
      for (let i = 0; i < gh.length; i++) gh[i]! += part[i]!;
    }
    gx = gh;
  }
  return { to: downTo, attn, input: downTo === 'input' ? f32(gx) : undefined };
}
