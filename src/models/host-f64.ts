/**
 * Float64 arithmetic on host arrays for the precise forward passes (`--forward f64`: src/models/vit-f64.ts and
 * bert-f64.ts): LayerNorm, softmax, exact-erf GELU and the helpers around the products, which run through an
 * F64MatMul (src/engine/f64-matmul.ts). Each model's trace stores every value rounded to float32 once (`f32`).
 */
import { loadOnnxRuntime } from '../engine/onnx.js';
import type * as tf from '../engine/tf.js';
import { forwardPrecision } from './forward-precision.js';
import type { Linear } from './linear.js';

/** One line for the logs: the forward precision in use and what computes its products. */
export function describeForward(): string {
  if (forwardPrecision() === 'f32') return 'float32 (the backend’s own)';
  return `float64 forward, backward and relevance passes, rounded once per value (products: ${loadOnnxRuntime().ort ? 'onnxruntime-node double GEMM' : 'JavaScript; slow for large models: install onnxruntime-node'})`;
}

/** A Linear layer's weights on the host: Wᵀ as [in, out] in float32 as stored (the products' operand), bias in float64. */
export interface HostLinear {
  Wt: Float32Array;
  b?: Float64Array;
  inDim: number;
  outDim: number;
}

/** A tensor's values as float64 (read asynchronously: the webgpu backend has no synchronous read in Node). */
export async function readF64(t: tf.Tensor): Promise<Float64Array> {
  return Float64Array.from((await t.data()) as Float32Array);
}

export async function readLinear(l: Linear): Promise<HostLinear> {
  return {
    Wt: Float32Array.from((await l.Wt.data()) as Float32Array),
    b: l.b ? await readF64(l.b) : undefined,
    inDim: l.Wt.shape[0],
    outDim: l.Wt.shape[1],
  };
}

/** A LayerNorm's (γ, β) in float64. */
export async function readNorm(n: { gamma: tf.Tensor; beta: tf.Tensor }): Promise<[Float64Array, Float64Array]> {
  return [await readF64(n.gamma), await readF64(n.beta)];
}

/** `read(model)`, once per model: later calls share the first one's promise (host weights are read back once). */
export function oncePerModel<M extends object, W>(read: (model: M) => Promise<W>): (model: M) => Promise<W> {
  const cache = new WeakMap<M, Promise<W>>();
  return (model) => {
    let w = cache.get(model);
    if (!w) {
      w = read(model);
      cache.set(model, w);
    }
    return w;
  };
}

/** Each value rounded to float32 once. */
export const f32 = (x: Float64Array): Float32Array => Float32Array.from(x);

/** GELU (exact, erf) of every value, in float64. */
export function geluF64(z: Float64Array): Float64Array {
  const g = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) g[i] = 0.5 * z[i]! * (1 + erf(z[i]! * Math.SQRT1_2));
  return g;
}

/** d GELU(z)/dz = Φ(z) + z·φ(z) (exact, erf) of every value, in float64. */
export function geluGradF64(z: Float64Array): Float64Array {
  const out = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const x = z[i]!;
    out[i] = 0.5 * (1 + erf(x * Math.SQRT1_2)) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI;
  }
  return out;
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * The vector–Jacobian product of `layerNorm` over rows of length D at its input x, for the output gradient g
 * (β drops out), in float64: (γg − mean(γg) − x̂·mean(γg·x̂)) / σ, with x̂ = (x − μ)/σ, σ = √(biased var + eps).
 */
export function layerNormBackwardF64(
  x: Float64Array,
  g: Float64Array,
  D: number,
  gamma: Float64Array,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  const xhat = new Float64Array(D);
  const dy = new Float64Array(D);
  for (let r = 0; r < x.length; r += D) {
    let mean = 0;
    for (let j = 0; j < D; j++) mean += x[r + j]!;
    mean /= D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r + j]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / D + eps);
    let m1 = 0;
    let m2 = 0;
    for (let j = 0; j < D; j++) {
      xhat[j] = (x[r + j]! - mean) * rstd;
      dy[j] = g[r + j]! * gamma[j]!;
      m1 += dy[j]!;
      m2 += dy[j]! * xhat[j]!;
    }
    m1 /= D;
    m2 /= D;
    for (let j = 0; j < D; j++) out[r + j] = (dy[j]! - m1 - xhat[j]! * m2) * rstd;
  }
  return out;
}

/** LayerNorm over rows of length D (biased variance, as torch), in float64. */
export function layerNorm(
  x: Float64Array,
  D: number,
  [gamma, beta]: [Float64Array, Float64Array],
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length; r += D) {
    let mean = 0;
    for (let j = 0; j < D; j++) mean += x[r + j]!;
    mean /= D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r + j]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / D + eps);
    for (let j = 0; j < D; j++) y[r + j] = (x[r + j]! - mean) * rstd * gamma[j]! + beta[j]!;
  }
  return y;
}

/**
 * The vector–Jacobian product of a row softmax, rows of length n: P ⊙ (g − Σ_j g_j·P_j) per row, from the softmax's
 * output P and the output gradient g, in float64.
 */
export function softmaxBackwardRows(P: Float64Array, g: Float64Array, n: number): Float64Array {
  const out = new Float64Array(g.length);
  for (let r = 0; r < g.length; r += n) {
    let s = 0;
    for (let j = 0; j < n; j++) s += g[r + j]! * P[r + j]!;
    for (let j = 0; j < n; j++) out[r + j] = P[r + j]! * (g[r + j]! - s);
  }
  return out;
}

/** Softmax over rows of length n, in place, float64. */
export function softmaxRows(x: Float64Array, n: number): void {
  for (let r = 0; r < x.length; r += n) {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, x[r + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(x[r + j]! - mx);
      x[r + j] = e;
      s += e;
    }
    for (let j = 0; j < n; j++) x[r + j]! /= s;
  }
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * erf(x) to about 1e-15 relative: the series erf(x) = 2/√π · e^{−x²} · Σₙ (2x²)ⁿ x / (1·3·…·(2n+1)), whose terms are
 * all positive (no cancellation); |x| ≥ 6 gives ±1 (erfc(6) ≈ 2e-17).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  const x2 = ax * ax;
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

export function addBias(y: Float64Array, b: Float64Array | undefined): Float64Array {
  if (!b) return y;
  const out = new Float64Array(y.length);
  const n = b.length;
  for (let i = 0; i < y.length; i++) out[i] = y[i]! + b[i % n]!;
  return out;
}

export function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/** Each group's [rows, cols] matrix transposed: [G, rows, cols] → [G, cols, rows]. */
export function transposeGroups(x: Float64Array, G: number, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let g = 0; g < G; g++) {
    const o = g * rows * cols;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[o + j * rows + i] = x[o + i * cols + j]!;
  }
  return out;
}

/** [BN, H·d] → [BH, N, d] (head h = features [h·d, (h+1)·d)): the inverse of mergeHeads. */
export function splitHeads(x: Float64Array, B: number, H: number, N: number, d: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++)
        for (let j = 0; j < d; j++) out[((b * H + h) * N + n) * d + j] = x[(b * N + n) * H * d + h * d + j]!;
  return out;
}

/** Attention heads back to token rows: [BH, N, d] → [BN, H·d] (head h = features [h·d, (h+1)·d)). */
export function mergeHeads(x: Float64Array, B: number, H: number, N: number, d: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let n = 0; n < N; n++)
        for (let j = 0; j < d; j++) out[(b * N + n) * H * d + h * d + j] = x[((b * H + h) * N + n) * d + j]!;
  return out;
}

/** The inverse of the ViT's qkv split for one sample: q, k, v as [H, N, d] → [N, 3·H·d], features (qkv, head, dim). */
export function mergeQkv(
  parts: [Float64Array, Float64Array, Float64Array],
  H: number,
  N: number,
  d: number,
): Float64Array {
  const D = H * d;
  const out = new Float64Array(N * 3 * D);
  parts.forEach((x, part) => {
    const merged = mergeHeads(x, 1, H, N, d);
    for (let n = 0; n < N; n++) out.set(merged.subarray(n * D, (n + 1) * D), n * 3 * D + part * D);
  });
  return out;
}

/**
 * A backward or relevance pass computed on the host in float64, each value rounded to float32 once: per block, the
 * attention gradient or relevance [B·H, N, N] (undefined below the pass's lowest block), and what reached the input
 * when the pass went through every block (the layout of the tensor pass it stands for).
 */
export interface HostMaps {
  /** How deep the pass went: its lowest block, or 'input'. */
  to: number | 'input';
  attn: (Float32Array | undefined)[];
  input?: Float32Array;
  /** `input` before its rounding, where a method may output it as it is (ViT full LRP's pixel relevance). */
  input64?: Float64Array;
}
