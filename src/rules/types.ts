import type * as tf from '@tensorflow/tfjs';
import type { Linear } from '../models/linear.js';

/**
 * A rule set says how relevance crosses each kind of layer; it knows nothing about the model. The paper's two rule
 * sets ("ours", used by transformer attribution, and "lrp", used by the LRP and partial-LRP baselines) differ in
 * exactly two layer kinds, Linear and Add (docs/methods.md#the-two-rule-sets); every other kind (clone, two-operand
 * products, CLS pooling, the input conv, the identities) is shared: see ./common.ts.
 */
export interface RuleSet {
  readonly name: RuleSetName;
  /**
   * y = x·Wᵀ (+ b, ignored by both rules): x [M, in], R [M, out] → relevance of x, [M, in].
   * `xW`, when the caller kept it from the forward pass, is x·Wᵀ without the bias; a rule that needs
   * it then skips recomputing it.
   */
  linear(layer: Linear, x: tf.Tensor2D, R: tf.Tensor2D, xW?: tf.Tensor2D): tf.Tensor2D;
  /**
   * z = x0 + x1 with batch axis first (x1 may broadcast against x0). Returns the relevance of each
   * operand, both shaped like R. Sums inside the rule are per sample, so a batch equals N single runs.
   * `z`, when the caller kept it from the forward pass, is that sum (shaped like R); a rule then divides by it
   * instead of adding the operands again (see ./common.ts, "Denominators from the forward pass").
   */
  add(x0: tf.Tensor, x1: tf.Tensor, R: tf.Tensor, z?: tf.Tensor): [tf.Tensor, tf.Tensor];
}

export type RuleSetName = 'ours' | 'lrp';
