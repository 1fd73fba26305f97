import * as tf from './tf.js';

/**
 * Tensor primitives shared by the models, the backward pass and the relevance rules.
 *
 * Why these exist instead of plain tf.matMul: on the wasm backend (the default here) batched and
 * transposed matmuls take XNNPACK's slow paths, 5–15× slower than plain 2-D products (docs/architecture.md, "TensorFlow.js on Node").
 * So every product in the hot path is written as "2-D, no transpose flags": weights are stored in both
 * orientations, and batched products are split into per-slice 2-D matmuls where that is faster.
 */

/** Whether batched matmuls should be split into per-slice 2-D matmuls (true on wasm). */
let splitBatched = true;
/** Multiply-adds per slice below which a batched product is not split (measured on wasm). */
const SPLIT_MIN_WORK = 1_500_000;

/** Whether safeDivide may use the fused kernel (registered for wasm by platform-fixes.ts). */
let fusedSafeDivide = false;

/**
 * Whether the backend in use can read its tensors synchronously (all but webgpu in Node). Where it can,
 * sumPerSample and the float64 rollout (methods/aggregate.ts) work on the host in float64; where it cannot,
 * explain() finds the top class with a pass of its own (methods/explain.ts).
 */
export function hostReadable(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/** Call after applyPlatformFixes(backendName). */
export function configureOps(backendName: string): void {
  splitBatched = backendName === 'wasm';
  fusedSafeDivide = tf.getKernel(SAFE_DIVIDE_KERNEL, backendName) !== undefined;
}

/** Override the choice (training with large batches is cheaper with plain batched matmuls). */
export function setSplitBatchedMatmul(split: boolean): void {
  splitBatched = split;
}

/**
 * For training (tf.grad through the model): TF.js's own matMul gradient uses the transposed-matmul
 * kernels, which are very slow on wasm. This version computes the same gradients with explicit
 * transposes and plain products (docs/architecture.md, "TensorFlow.js on Node"). Off by default: explanations never run tf.grad.
 */
let fastGradients = false;

const matMulFastGrad = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, tT(sb)), tf.matMul(tT(sa), dy)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

export function setTrainingMode(on: boolean): void {
  fastGradients = on;
}

function matMul<T extends tf.Tensor>(a: T, b: T): T {
  return (fastGradients ? matMulFastGrad(a, b) : tf.matMul(a, b)) as T;
}

/** Plain 2-D product a[M,K] · b[K,N]. */
export function mm(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return matMul(a, b);
}

/** Batched product a[G,M,K] · b[G,K,N] (no transposes). */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [g, m, k] = a.shape;
  const n = b.shape[2];
  // Splitting pays off for ViT-B-sized heads (197×64×197) but costs more than it saves on small ones.
  if (!splitBatched || g === 1 || m * k * n < SPLIT_MIN_WORK) return matMul(a, b);
  const parts: tf.Tensor2D[] = [];
  for (let i = 0; i < g; i++) {
    const ai = tf.reshape(tf.slice(a, [i, 0, 0], [1, m, k]), [m, k]) as tf.Tensor2D;
    const bi = tf.reshape(tf.slice(b, [i, 0, 0], [1, k, n]), [k, n]) as tf.Tensor2D;
    parts.push(matMul(ai, bi));
  }
  return tf.reshape(tf.concat(parts, 0), [g, m, n]) as tf.Tensor3D;
}

/** Transpose of the last two axes, materialised (so the following product takes the fast path). */
export function tT<T extends tf.Tensor>(x: T): T {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return tf.transpose(x, perm) as T;
}

export function relu<T extends tf.Tensor>(x: T): T {
  return tf.relu(x) as T;
}

/**
 * x⁻ = min(x, 0), computed as x − x⁺ (exact: one of the two terms is zero). The wasm backend's Minimum
 * against a scalar takes a slow broadcasting path, ~10× slower than Relu + Sub; pass x⁺ when it is
 * already at hand.
 */
export function negPart<T extends tf.Tensor>(x: T, xPos: T = relu(x)): T {
  return tf.sub(x, xPos) as T;
}

/**
 * The reference's `safe_divide(a, b)` with ε = 1e-9 (docs/methods.md#safe-division): `a / (b + ε)` where b ≠ 0,
 * 0 where b == 0, and a/ε where b + ε rounds to exactly 0. Note that it is *not* a sign-aware stabiliser:
 * a tiny negative b flips sign after the shift, and we reproduce that.
 */
export const SAFE_DIVIDE_EPS = 1e-9;

/** The fused safe_divide kernel, registered for wasm by platform-fixes.ts. */
export const SAFE_DIVIDE_KERNEL = 'BenchSafeDivide';

export function safeDivide(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  // The fused kernel has no gradient: keep the composite when training differentiates through the model.
  if (fusedSafeDivide && !fastGradients && a.dtype === 'float32' && b.dtype === 'float32' && sameShape(a, b)) {
    return tf.engine().runKernel(SAFE_DIVIDE_KERNEL, { a, b }, {}) as tf.Tensor;
  }
  return tf.tidy(() => {
    let den = tf.add(b, SAFE_DIVIDE_EPS);
    den = tf.where(tf.equal(den, 0), tf.fill(den.shape, SAFE_DIVIDE_EPS), den);
    const q = tf.div(a, den);
    return tf.mul(q, tf.cast(tf.notEqual(b, 0), 'float32'));
  });
}

function sameShape(a: tf.Tensor, b: tf.Tensor): boolean {
  return a.rank === b.rank && a.shape.every((n, i) => n === b.shape[i]);
}

export interface LayerNormParams {
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  eps: number;
}

/** LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm. */
export function layerNorm<T extends tf.Tensor>(x: T, p: LayerNormParams): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, p.eps)));
    return tf.add(tf.mul(xhat, p.gamma), p.beta) as T;
  });
}

/** Vector–Jacobian product of layerNorm at input x: returns ∂⟨y, g⟩/∂x. */
export function layerNormBackward<T extends tf.Tensor>(x: T, g: T, p: LayerNormParams): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const rstd = tf.rsqrt(tf.add(variance, p.eps));
    const xhat = tf.mul(tf.sub(x, mean), rstd);
    const dy = tf.mul(g, p.gamma);
    const m1 = tf.mean(dy, -1, true);
    const m2 = tf.mean(tf.mul(dy, xhat), -1, true);
    return tf.mul(tf.sub(tf.sub(dy, m1), tf.mul(xhat, m2)), rstd) as T;
  });
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact (erf) GELU, torch.nn.GELU's default. */
export function gelu<T extends tf.Tensor>(z: T): T {
  return tf.tidy(() => tf.mul(tf.mul(z, 0.5), tf.add(tf.erf(tf.mul(z, SQRT1_2)), 1)) as T);
}

/** d GELU(z) / dz = Φ(z) + z·φ(z). */
export function geluGrad<T extends tf.Tensor>(z: T): T {
  return tf.tidy(() => {
    const cdf = tf.mul(tf.add(tf.erf(tf.mul(z, SQRT1_2)), 1), 0.5);
    const pdf = tf.mul(tf.exp(tf.mul(tf.square(z), -0.5)), INV_SQRT_2PI);
    return tf.add(cdf, tf.mul(z, pdf)) as T;
  });
}

/**
 * Sum over every axis but the first: per-sample totals, kept broadcastable against x.
 *
 * Where the backend's tensors can be read synchronously (wasm, cpu, tfjs-node) the sums are accumulated in
 * float64 on the host and rounded once. The 'ours' Add rule rescales each branch by such totals of mixed-sign
 * relevance (src/rules/ours.ts), where float32 accumulation over B·N·D terms cancels: measured on the S1 goldens,
 * this alone took transformer attribution's map from 1.32× to 0.38× the official float32 code's distance to
 * float64 (results/precision/README.md). webgpu keeps the backend's float32 sum (its reads are asynchronous).
 */
export function sumPerSample(x: tf.Tensor): tf.Tensor {
  const axes = [...Array(x.rank).keys()].slice(1);
  if (!hostReadable()) return tf.sum(x, axes, true);
  const B = x.shape[0]!;
  const data = x.dataSync() as Float32Array;
  const n = data.length / B;
  const out = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = b * n; i < (b + 1) * n; i++) s += data[i]!;
    out[b] = s;
  }
  return tf.tensor(out, [B, ...axes.map(() => 1)]);
}
