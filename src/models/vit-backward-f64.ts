/**
 * The ViT backward pass in float64 on one sample's unrounded forward pass (`--forward f64`): the arithmetic of
 * `VisionTransformer.attentionGradients` (src/models/vit.ts), step for step, each result rounded to float32 once by
 * the caller. Products go through an F64MatMul; a Linear's g·W uses the host weight Wᵀ [in, out] transposed.
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import {
  add,
  geluGradF64,
  type HostLinear,
  layerNormBackwardF64,
  mergeQkv,
  softmaxBackwardRows,
  splitHeads,
  transposeGroups,
} from './host-f64.js';
import type { VisionTransformer } from './vit.js';
import { type ExactVitSample, vitHostWeights } from './vit-f64.js';

export interface ExactGradients {
  /** ∂(logit cls)/∂A_l per block l ≥ downTo, [H, N, N]; undefined below. */
  attn: (Float64Array | undefined)[];
  /** With downTo 'input': the gradient at block 0's input (the embeddings after the position add) [N, D]. */
  input?: Float64Array;
}

/**
 * ∂(logit `cls` of the tail with final-norm `eps`)/∂A_l for blocks l = depth−1 … downTo of one sample, or through
 * every block to the embeddings ('input').
 */
export async function vitAttentionGradientsF64(
  model: VisionTransformer,
  s: ExactVitSample,
  tail: 'lrp' | 'classifier',
  cls: number,
  downTo: number | 'input',
  matmul: F64MatMul,
): Promise<ExactGradients> {
  const c = model.config;
  const { numTokens: N, headDim: d, scale } = model.geo;
  const D = c.embed_dim;
  const H = c.num_heads;
  const w = await vitHostWeights(model);
  const eps = tail === 'lrp' ? c.lrp_final_norm_eps : c.final_norm_eps;
  /** g [rows, out] → g·W [rows, in]. */
  const back = (g: Float64Array, l: HostLinear) =>
    matmul(g, l.Wt, 1, g.length / l.outDim, l.outDim, l.inDim, { transposed: true });
  const seed = new Float64Array(c.num_classes);
  seed[cls] = 1;
  const gCls = layerNormBackwardF64(s.out.subarray(0, D), await back(seed, w.head), D, w.norm[0], eps);
  let gx: Float64Array = new Float64Array(N * D);
  gx.set(gCls);
  const attn: (Float64Array | undefined)[] = new Array(c.depth).fill(undefined);
  for (let l = c.depth - 1; l >= (downTo === 'input' ? 0 : downTo); l--) {
    const t = s.blocks[l]!;
    const bw = w.blocks[l]!;
    // MLP branch: out = h1 + fc2(gelu(fc1(LN2(h1)))).
    const gz1 = await back(gx, bw.fc2);
    const gelu1 = geluGradF64(t.z1);
    for (let i = 0; i < gz1.length; i++) gz1[i]! *= gelu1[i]!;
    const gh1 = add(gx, layerNormBackwardF64(t.h1, await back(gz1, bw.fc1), D, bw.ln2[0], c.norm_eps));
    // Attention branch: h1 = x + proj(merge(A·v)).
    const go = splitHeads(await back(gh1, bw.proj), 1, H, N, d);
    const gA = await matmul(go, transposeGroups(t.v, H, N, d), H, N, d, N);
    attn[l] = gA;
    if (l === downTo) break;
    const gv = await matmul(transposeGroups(t.A, H, N, N), go, H, N, N, d);
    const gDots = softmaxBackwardRows(t.A, gA, N);
    for (let i = 0; i < gDots.length; i++) gDots[i]! *= scale;
    const gq = await matmul(gDots, t.k, H, N, N, d);
    const gk = await matmul(transposeGroups(gDots, H, N, N), t.q, H, N, N, d);
    const gqkv = mergeQkv([gq, gk, gv], H, N, d);
    gx = add(gh1, layerNormBackwardF64(t.x, await back(gqkv, bw.qkv), D, bw.ln1[0], c.norm_eps));
  }
  return { attn, input: downTo === 'input' ? gx : undefined };
}
