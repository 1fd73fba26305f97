import * as tf from '@tensorflow/tfjs';
import { mm } from '../engine/ops.js';

/**
 * A fully connected layer y = x·Wᵀ + b. The weight is kept in both orientations so that neither the
 * forward product (x·Wᵀ) nor the backward-like ones (g·W) need a transposed-matmul kernel, and the sign
 * split W⁺ / W⁻ that the LRP rules use is made once per model (lazily, on first use), not per image.
 */
export class Linear {
  /** (out, in), as stored in checkpoints. */
  readonly W: tf.Tensor2D;
  /** (in, out). */
  readonly Wt: tf.Tensor2D;
  readonly b: tf.Tensor1D | undefined;
  private split?: { pos: tf.Tensor2D; posT: tf.Tensor2D; neg: tf.Tensor2D; negT: tf.Tensor2D };

  constructor(W: tf.Tensor2D, b?: tf.Tensor1D) {
    this.W = W;
    this.Wt = tf.transpose(W);
    this.b = b;
  }

  get inFeatures(): number {
    return this.W.shape[1];
  }

  get outFeatures(): number {
    return this.W.shape[0];
  }

  /** x[M, in] → x·Wᵀ + b. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    const y = mm(x, this.Wt);
    return this.b ? tf.add(y, this.b) : y;
  }

  /** g[M, out] → g·W: the vector–Jacobian product, also the "gradprop" of the LRP rules. */
  backward(g: tf.Tensor2D): tf.Tensor2D {
    return mm(g, this.W);
  }

  /** W⁺ = max(W, 0) and W⁻ = min(W, 0), in both orientations. */
  signed(): { pos: tf.Tensor2D; posT: tf.Tensor2D; neg: tf.Tensor2D; negT: tf.Tensor2D } {
    if (!this.split) {
      const pos = tf.keep(tf.relu(this.W)) as tf.Tensor2D;
      const neg = tf.keep(tf.minimum(this.W, 0)) as tf.Tensor2D;
      this.split = { pos, neg, posT: tf.keep(tf.transpose(pos)), negT: tf.keep(tf.transpose(neg)) };
    }
    return this.split;
  }

  dispose(): void {
    this.W.dispose();
    this.Wt.dispose();
    this.b?.dispose();
    if (this.split) for (const t of Object.values(this.split)) t.dispose();
  }
}
