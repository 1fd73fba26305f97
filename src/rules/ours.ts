import * as tf from '@tensorflow/tfjs';
import { mm, negPart, relu, safeDivide, sumPerSample } from '../engine/ops.js';
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

  linear(layer: Linear, x: tf.Tensor2D, R: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const { pos, neg, posT, negT } = layer.signed();
      const xp = relu(x);
      const xn = negPart(x);
      const S = safeDivide(R, tf.add(mm(xp, posT), mm(xn, negT))) as tf.Tensor2D;
      return tf.add(tf.mul(xp, mm(S, pos)), tf.mul(xn, mm(S, neg))) as tf.Tensor2D;
    });
  },

  add(x0: tf.Tensor, x1: tf.Tensor, R: tf.Tensor): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      const S = safeDivide(R, tf.add(x0, x1));
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
