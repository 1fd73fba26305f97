import { mm, negPart, relu } from '../engine/ops.js';
import * as tf from '../engine/tf.js';

/** The derived weights the LRP rules multiply by: W⁺ = max(W, 0), W⁻ = min(W, 0) and |W|. */
export type WeightPart = 'pos' | 'neg' | 'abs';

/**
 * A fully connected layer y = x·Wᵀ + b. The weight is kept in both orientations so that neither the
 * forward product (x·Wᵀ) nor the backward-like ones (g·W) need a transposed-matmul kernel.
 *
 * The relevance rules also multiply by derived weights (W⁺, W⁻, |W|), in both orientations. For small
 * models these are made once and kept; for large ones (ViT-B: 344 MB per copy, beside W, Wᵀ and the
 * packed copies XNNPACK keeps of them) they would not fit the 2 GiB RSS budget next to the activations,
 * so they are recomputed inside each rule call: an elementwise pass of ~1 ms against a 20–30 ms product.
 * Either way the products are the same calls on the same values, so caching never changes a result.
 * `setSignedCaching` decides, per model.
 */
export class Linear {
  /** (out, in), as stored in checkpoints. */
  readonly W: tf.Tensor2D;
  /** (in, out). */
  readonly Wt: tf.Tensor2D;
  readonly b: tf.Tensor1D | undefined;
  private readonly kept = new Map<string, tf.Tensor2D>();

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

  /** x[M, in] → x·Wᵀ, the forward product without the bias. */
  product(x: tf.Tensor2D): tf.Tensor2D {
    return mm(x, this.Wt);
  }

  /** g[M, out] → g·W: the vector–Jacobian product, also the "gradprop" of the LRP rules. */
  backward(g: tf.Tensor2D): tf.Tensor2D {
    return mm(g, this.W);
  }

  /*
   * The derived weight is the FIRST operand of these products, (P·xᵀ)ᵀ rather than x·Pᵀ: XNNPACK packs
   * the second operand of every product (and caches the packing per tensor), so a weight recomputed
   * per call would be repacked per call; the first operand is read as is. The two transposes of the
   * small activation side cost less (ViT-B: relevance passes 5–8% faster). Same form whether the derived
   * weight is kept or not, so small models (the golden tests) run the same arithmetic as large ones.
   */

  /** x[M, in] → x·Pᵀ for P = W⁺, W⁻ or |W| (the LRP rules' forward-like products). */
  forwardLike(x: tf.Tensor2D, part: WeightPart): tf.Tensor2D {
    return tf.transpose(mm(this.weightPart(part, 'out-in'), tf.transpose(x))) as tf.Tensor2D;
  }

  /** g[M, out] → g·P for P = W⁺, W⁻ or |W| (the LRP rules' backward-like products). */
  backwardLike(g: tf.Tensor2D, part: WeightPart): tf.Tensor2D {
    return tf.transpose(mm(this.weightPart(part, 'in-out'), tf.transpose(g))) as tf.Tensor2D;
  }

  /** Whether derived weights are kept across calls (decided per model, see setSignedCaching). */
  cacheSigned = true;

  /**
   * W⁺, W⁻ or |W| as (out, in) or, transposed, (in, out). A result that is not kept belongs to the
   * caller's tf.tidy scope.
   */
  weightPart(part: WeightPart, orientation: 'out-in' | 'in-out'): tf.Tensor2D {
    const key = `${part}:${orientation}`;
    const kept = this.kept.get(key);
    if (kept) return kept;
    const w = orientation === 'out-in' ? this.W : this.Wt;
    const made = part === 'pos' ? relu(w) : part === 'neg' ? negPart(w) : (tf.abs(w) as tf.Tensor2D);
    if (this.cacheSigned) this.kept.set(key, tf.keep(made));
    return made;
  }

  dispose(): void {
    this.W.dispose();
    this.Wt.dispose();
    this.b?.dispose();
    for (const t of this.kept.values()) t.dispose();
    this.kept.clear();
  }
}

/** The derived weights kept per layer when caching: three parts (W⁺, W⁻, |W|) in two orientations. */
export const DERIVED_COPIES = 6;
/** Above this many bytes of derived weights a model recomputes them per rule call (memory.ts reads it too). */
export const DERIVED_CACHE_BUDGET_BYTES = 512 * 2 ** 20;

/**
 * Keep the derived weights of these layers only if all of them (three parts, two orientations) fit in
 * `budgetBytes`.
 */
export function setSignedCaching(layers: readonly Linear[], budgetBytes = DERIVED_CACHE_BUDGET_BYTES): boolean {
  const bytes = layers.reduce((n, l) => n + DERIVED_COPIES * 4 * l.W.size, 0);
  const cache = bytes <= budgetBytes;
  for (const l of layers) l.cacheSigned = cache;
  return cache;
}
