import { bmm, mm, safeDivide, tT } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import type { Linear } from '../models/linear.js';

/**
 * Relevance rules that are identical in both rule sets (docs/methods.md#rules-shared-by-both-rule-sets).
 * LayerNorm, GELU, softmax and dropout pass relevance through unchanged, so they have no function here.
 *
 * Denominators from the forward pass. Each rule divides by its layer's output z (the reference recomputes it with
 * the layer's own forward). Where that output is a sum of mixed-sign terms (a residual add, the attention
 * products, the patch embedding's product) it is ill-conditioned: recomputed in float32 from float32 operands it
 * can lose most of its digits. So a caller that kept z from its forward pass passes it in, and the rule divides by
 * that. With the float32 forward it is the very value a recomputation gives (the same operation on the same
 * operands); with the float64 forward (src/models/vit-f64.ts) it is the float64 value rounded once.
 */

/** Clone (one tensor used by several branches): R_in = X ⊙ Σ_k safe_divide(R_k, X). */
export function cloneRule(x: tf.Tensor, Rs: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    let acc = safeDivide(Rs[0]!, x);
    for (const R of Rs.slice(1)) acc = tf.add(acc, safeDivide(R, x));
    return tf.mul(x, acc);
  });
}

/**
 * Z-rule for a batched product Z = A·B: R_A = A ⊙ (S·Bᵀ), R_B = B ⊙ (Aᵀ·S), S = safe_divide(R, Z). `Z`: the
 * forward pass's A·B, when kept.
 */
export function productRule(
  A: tf.Tensor3D,
  B: tf.Tensor3D,
  R: tf.Tensor3D,
  Z?: tf.Tensor3D,
): [tf.Tensor3D, tf.Tensor3D] {
  return tf.tidy(() => {
    const S = safeDivide(R, Z ?? bmm(A, B)) as tf.Tensor3D;
    return [tf.mul(A, bmm(S, tT(B))), tf.mul(B, bmm(tT(A), S))];
  });
}

/**
 * Z-rule for Z = A·Bᵀ (the attention scores q·kᵀ): R_A = A ⊙ (S·B), R_B = B ⊙ (Sᵀ·A).
 * `Bt` is Bᵀ, already materialised by the forward pass; `Z` the forward pass's A·Bᵀ, when kept.
 */
export function productTransposedRule(
  A: tf.Tensor3D,
  B: tf.Tensor3D,
  Bt: tf.Tensor3D,
  R: tf.Tensor3D,
  Z?: tf.Tensor3D,
): [tf.Tensor3D, tf.Tensor3D] {
  return tf.tidy(() => {
    const S = safeDivide(R, Z ?? bmm(A, Bt)) as tf.Tensor3D;
    return [tf.mul(A, bmm(S, B)), tf.mul(B, bmm(tT(S), A))];
  });
}

/** CLS pooling (index_select of token 0): the kept token gets X ⊙ safe_divide(R, X); x0, R: [B, D]. */
export function poolRule(x0: tf.Tensor2D, R: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(x0, safeDivide(R, x0)) as tf.Tensor2D);
}

/**
 * The zᴮ ("box") rule of the input conv, on im2col patches (the ViT patch embedding is a conv with
 * kernel = stride, so each patch is one row). The bounds are the per-sample min/max of the actual input,
 * and the denominator gets a plain +1e-9 (no safe_divide), as in the reference.
 *   patches [M, in], R [M, out], lo/hi [M, 1] (each row's sample bounds) → relevance [M, in];
 *   product: the forward pass's patches·Wᵀ (no bias), when kept.
 */
export function zBoxRule(
  layer: Linear,
  patches: tf.Tensor2D,
  R: tf.Tensor2D,
  lo: tf.Tensor2D,
  hi: tf.Tensor2D,
  product?: tf.Tensor2D,
): tf.Tensor2D {
  return tf.tidy(() => {
    const pos = layer.weightPart('pos', 'out-in');
    const neg = layer.weightPart('neg', 'out-in');
    // conv(Lo, W⁺) for a constant image Lo is lo · Σ_in W⁺ per output channel.
    const sumPos = tf.sum(pos, 1).reshape([1, -1]);
    const sumNeg = tf.sum(neg, 1).reshape([1, -1]);
    const Z = tf.add(tf.sub(tf.sub(product ?? mm(patches, layer.Wt), tf.mul(lo, sumPos)), tf.mul(hi, sumNeg)), 1e-9);
    const S = tf.div(R, Z) as tf.Tensor2D;
    return tf.sub(
      tf.sub(tf.mul(patches, mm(S, layer.W)), tf.mul(lo, mm(S, pos))),
      tf.mul(hi, mm(S, neg)),
    ) as tf.Tensor2D;
  });
}
