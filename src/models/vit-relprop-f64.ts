/**
 * The ViT relevance pass in float64 on one sample's unrounded forward pass (`--forward f64`): the walk of
 * `VisionTransformer.relprop` (src/models/vit.ts, docs/methods.md#vit-relevance-walk) with the float64 rules of
 * src/rules/float64.ts, every denominator the forward's own float64 value.
 *
 * Why: full LRP is ill-conditioned (its shared sign splits and the residual rules divide by sums that cancel), so a
 * float32 relevance pass, even on a float64 forward rounded once, leaves the map a few float32 ulps of its largest
 * value from the float64 map, enough to move a pixel across a perturbation step's cut (results/precision). In float64,
 * with one rounding at the end, the map is as close to the float64 truth as float32 can hold it.
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import {
  cloneRuleF64,
  type HostRuleSet,
  poolRuleF64,
  productRuleF64,
  productTransposedRuleF64,
  zBoxRuleF64,
} from '../rules/float64.js';
import { mergeQkv, splitHeads } from './host-f64.js';
import type { VisionTransformer } from './vit.js';
import { type ExactVitSample, vitHostWeights } from './vit-f64.js';

export interface ExactRelevance {
  /** Per block l ≥ stop, the relevance of the attention probabilities (after the halving) [H, N, N]. */
  attnCam: (Float64Array | undefined)[];
  /** With stop 'pixels': the pixel relevance summed over channels [H, W]. */
  pixels?: Float64Array;
}

/**
 * Relevance of one sample from the one-hot seed at `cls` of the LRP tail's logits, down to the attention of block
 * `stop` or, with 'pixels', through the position add and the zᴮ patch embedding to the input.
 */
export async function vitRelpropF64(
  model: VisionTransformer,
  s: ExactVitSample,
  cls: number,
  rules: HostRuleSet,
  stop: number | 'pixels',
  matmul: F64MatMul,
): Promise<ExactRelevance> {
  const c = model.config;
  const { numTokens: N, numPatches: P, headDim: d } = model.geo;
  const D = c.embed_dim;
  const H = c.num_heads;
  const w = await vitHostWeights(model);
  const head = s.heads.lrp;
  const seed = new Float64Array(c.num_classes);
  seed[cls] = 1;
  const rPooled = await rules.linear(w.head, head.pooled, seed, head.product);
  let R: Float64Array = new Float64Array(N * D);
  R.set(poolRuleF64(head.pooled, rPooled)); // the final norm is an identity; token 0 only
  const attnCam: (Float64Array | undefined)[] = new Array(c.depth).fill(undefined);
  const half = (x: Float64Array) => x.map((v) => v * 0.5);
  for (let l = c.depth - 1; l >= (stop === 'pixels' ? 0 : stop); l--) {
    const t = s.blocks[l]!;
    const bw = w.blocks[l]!;
    const out = l + 1 < c.depth ? s.blocks[l + 1]!.x : s.out;
    const [rRes2, rM] = rules.add(t.h1, t.m, R, out);
    const rG = await rules.linear(bw.fc2, t.g, rM, t.fc2P);
    const rN2 = await rules.linear(bw.fc1, t.n2, rG, t.fc1P); // GELU and LayerNorm are identities
    const rH1 = cloneRuleF64(t.h1, [rRes2, rN2]);
    const [rRes1, rAttn] = rules.add(t.x, t.a, rH1, t.h1);
    const rO = splitHeads(await rules.linear(bw.proj, t.o, rAttn, t.projP), 1, H, N, d);
    const [rA, rV] = (await productRuleF64(matmul, t.A, t.v, rO, splitHeads(t.o, 1, H, N, d), [H, N, N, d])).map(half);
    attnCam[l] = rA;
    if (l === stop) return { attnCam };
    // Softmax and the score scale are identities for relevance (quirk Q7).
    const [rQ, rK] = (await productTransposedRuleF64(matmul, t.q, t.k, rA!, t.scores, [H, N, d])).map(half);
    const rN1 = await rules.linear(bw.qkv, t.n1, mergeQkv([rQ!, rK!, rV!], H, N, d), t.qkvP);
    R = cloneRuleF64(t.x, [rRes1, rN1]);
  }
  // Position add, then the patch embedding; the CLS token's and pos_embed's shares are dropped (Q30).
  const [rTok] = rules.add(s.tokens, w.pos, R, s.blocks[0]!.x);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of s.input) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const rIn = await zBoxRuleF64(matmul, w.patch, s.patches, rTok.subarray(D), lo, hi, s.patchProduct);
  // col2im, summed over channels: patch row pi, column (channel, row, col) → pixel.
  const p = c.patch_size;
  const S = c.img_size;
  const gw = S / p;
  const cols = c.in_chans * p * p;
  const pixels = new Float64Array(S * S);
  for (let pi = 0; pi < P; pi++) {
    const y0 = Math.floor(pi / gw) * p;
    const x0 = (pi % gw) * p;
    for (let ch = 0; ch < c.in_chans; ch++)
      for (let y = 0; y < p; y++)
        for (let x = 0; x < p; x++) pixels[(y0 + y) * S + x0 + x]! += rIn[pi * cols + (ch * p + y) * p + x]!;
  }
  return { attnCam, pixels };
}
