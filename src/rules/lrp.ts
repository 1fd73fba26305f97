import { negPart, relu, safeDivide } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import type { Linear } from '../models/linear.js';
import type { RuleSet } from './types.js';

/**
 * The earlier, plain LRP rules (reference `modules/layers_lrp.py`) used by the paper's "LRP" and
 * "partial LRP" baselines.
 *
 * Linear: each sign half has its OWN denominator, so each half conserves relevance on its own and the
 * layer roughly doubles the total (quirk Q5; reproduced as it is, the baselines' numbers depend on it).
 * Add: the plain z-rule.
 */
export const lrpRules: RuleSet = {
  name: 'lrp',

  linear(layer: Linear, x: tf.Tensor2D, R: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const xp = relu(x);
      const xn = negPart(x, xp);
      const S1 = safeDivide(R, layer.forwardLike(xp, 'pos')) as tf.Tensor2D;
      const S2 = safeDivide(R, layer.forwardLike(xn, 'neg')) as tf.Tensor2D;
      return tf.add(
        tf.mul(xp, layer.backwardLike(S1, 'pos')),
        tf.mul(xn, layer.backwardLike(S2, 'neg')),
      ) as tf.Tensor2D;
    });
  },

  add(x0: tf.Tensor, x1: tf.Tensor, R: tf.Tensor, z?: tf.Tensor): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      const S = safeDivide(R, z ?? tf.add(x0, x1));
      return [tf.mul(x0, S), tf.mul(x1, S)];
    });
  },
};
