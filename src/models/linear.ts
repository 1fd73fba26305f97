import * as tf from '@tensorflow/tfjs';
import { mm } from '../engine/ops.js';

/**
 * A fully connected layer y = x·Wᵀ + b. The weight is kept in both orientations so that neither the
 * forward product (x·Wᵀ) nor the backward-like ones (g·W) need a transposed-matmul kernel.
 *
 * The sign split W⁺ / W⁻ that the LRP rules use (in both orientations) is four more copies of the
 * weight. For small models it is made once and cached; for large ones (ViT-B: 4 × 344 MB) that would not
 * fit the 4 GiB wasm heap beside the activations, so it is recomputed inside each rule call (an
 * elementwise pass, about a sixth of the cost of the product that uses it). `Linear.cacheSignedBudget`
 * sets the limit, in bytes per model, see `setSignedCaching`.
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

  /** Whether `signed()` keeps its result across calls (decided per model, see setSignedCaching). */
  cacheSigned = true;

  /**
   * W⁺ = max(W, 0) and W⁻ = min(W, 0), in both orientations. Uncached results belong to the caller's
   * tf.tidy scope.
   */
  signed(): { pos: tf.Tensor2D; posT: tf.Tensor2D; neg: tf.Tensor2D; negT: tf.Tensor2D } {
    if (!this.cacheSigned) {
      return { pos: tf.relu(this.W), neg: tf.minimum(this.W, 0), posT: tf.relu(this.Wt), negT: tf.minimum(this.Wt, 0) };
    }
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

/** Cache the sign splits of these layers only if the four extra copies fit in `budgetBytes`. */
export function setSignedCaching(layers: readonly Linear[], budgetBytes = 512 * 2 ** 20): boolean {
  const bytes = layers.reduce((n, l) => n + 4 * 4 * l.W.size, 0);
  const cache = bytes <= budgetBytes;
  for (const l of layers) l.cacheSigned = cache;
  return cache;
}
