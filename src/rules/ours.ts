import { safeDivide, sumPerSample } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import type { Linear } from '../models/linear.js';
import type { RuleSet } from './types.js';

/**
 * The paper's rules (reference `modules/layers_ours.py`).
 *
 * Linear: LRP-α1β0 for signed inputs with ONE shared denominator,
 *   R_in = X⁺ ⊙ (S·W⁺) + X⁻ ⊙ (S·W⁻),  S = safe_divide(R, X⁺·W⁺ᵀ + X⁻·W⁻ᵀ).
 * The reference also computes an inhibitor term and multiplies it by β = 0; we skip it (quirk Q6).
 *
 * Add: the z-rule, then both branches rescaled so that their totals are the |z-rule totals| shares of
 * the incoming total. The reference sums over the whole batch tensor (quirk Q12); we sum per sample so
 * that a batch gives the same maps as single images (identical for B = 1).
 */
export const oursRules: RuleSet = {
  name: 'ours',

  linear(layer: Linear, x: tf.Tensor2D, R: tf.Tensor2D, xW?: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      // With W⁺ = (W + |W|)/2, W⁻ = (W − |W|)/2 and likewise for x, the denominator is
      //   X⁺·W⁺ᵀ + X⁻·W⁻ᵀ = (X·Wᵀ + |X|·|W|ᵀ) / 2,
      // where X·Wᵀ is the forward pass's own product: one new product instead of two. Likewise
      //   X⁺ ⊙ (S·W⁺) + X⁻ ⊙ (S·W⁻) = (X ⊙ (S·W) + |X| ⊙ (S·|W|)) / 2,
      // and S·W uses the weight the backward pass already uses, instead of a fresh sign split.
      const ax = tf.abs(x) as tf.Tensor2D;
      const z = tf.mul(tf.add(xW ?? layer.product(x), layer.forwardLike(ax, 'abs')), 0.5);
      const S = safeDivide(R, z) as tf.Tensor2D;
      return tf.mul(tf.add(tf.mul(x, layer.backward(S)), tf.mul(ax, layer.backwardLike(S, 'abs'))), 0.5) as tf.Tensor2D;
    });
  },

  add(x0: tf.Tensor, x1: tf.Tensor, R: tf.Tensor, z?: tf.Tensor): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      const S = safeDivide(R, z ?? tf.add(x0, x1));
      const a = tf.mul(x0, S);
      const b = tf.mul(x1, S);
      const A = sumPerSample(a);
      const Bs = sumPerSample(b);
      const total = sumPerSample(R);
      const absA = tf.abs(A);
      const absB = tf.abs(Bs);
      const denom = tf.add(absA, absB);
      const fa = tf.mul(safeDivide(absA, denom), total);
      const fb = tf.mul(safeDivide(absB, denom), total);
      return [tf.mul(a, safeDivide(fa, A)), tf.mul(b, safeDivide(fb, Bs))];
    });
  },
};
