import type { F64MatMul } from '../engine/f64-matmul.js';
import { type HostLinear, transposeGroups } from '../models/host-f64.js';
import type { RuleSetName } from './types.js';

/**
 * The relevance rules in float64 on host arrays, for the float64 relevance passes (`--forward f64`:
 * src/models/vit-relprop-f64.ts). The same rules as ./common.ts, ./ours.ts and ./lrp.ts (docs/methods.md#rules), on
 * one sample at a time, so a "per-sample sum" is a sum over the whole array. Every denominator is the forward pass's
 * own float64 value; products run through an F64MatMul, the derived weights (W⁺, W⁻, |W|) formed inside it from the
 * stored float32 weight, so no float64 or derived copy of a weight is kept.
 *
 * A Linear's host weight is Wᵀ [in, out]: x·Wᵀ is a plain product, g·W the `transposed` one.
 */
export interface HostRuleSet {
  readonly name: RuleSetName;
  /** y = x·Wᵀ (+ b): x [M, in], R [M, out], xW the forward's x·Wᵀ [M, out] → relevance of x [M, in]. */
  linear(layer: HostLinear, x: Float64Array, R: Float64Array, xW: Float64Array): Promise<Float64Array>;
  /** z = x0 + x1 (same shapes, one sample): the relevance of each operand. */
  add(x0: Float64Array, x1: Float64Array, R: Float64Array, z: Float64Array): [Float64Array, Float64Array];
}

const EPS = 1e-9;

/** The reference's safe_divide (docs/methods.md#safe-division) of one value, in float64. */
export function safeDiv(a: number, b: number): number {
  if (b === 0) return 0;
  const den = b + EPS;
  return a / (den === 0 ? EPS : den);
}

function safeDivAll(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = safeDiv(a[i]!, b[i]!);
  return out;
}

function sum(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

/** The two rule sets in float64, their products through `matmul`. */
export function hostRuleSets(matmul: F64MatMul): Record<RuleSetName, HostRuleSet> {
  /** x [M, in] · P(W)ᵀ → [M, out]. */
  const forwardLike = (l: HostLinear, x: Float64Array, part: 'pos' | 'neg' | 'abs') =>
    matmul(x, l.Wt, 1, x.length / l.inDim, l.inDim, l.outDim, { part });
  /** g [M, out] · P(W) → [M, in] (P(W) = W when part is undefined). */
  const backwardLike = (l: HostLinear, g: Float64Array, part?: 'pos' | 'neg' | 'abs') =>
    matmul(g, l.Wt, 1, g.length / l.outDim, l.outDim, l.inDim, { part, transposed: true });
  /** The plain z-rule's two shares: x0 ⊙ S, x1 ⊙ S with S = safe_divide(R, z). */
  const zShares = (x0: Float64Array, x1: Float64Array, R: Float64Array, z: Float64Array) => {
    const a = new Float64Array(R.length);
    const b = new Float64Array(R.length);
    for (let i = 0; i < R.length; i++) {
      const S = safeDiv(R[i]!, z[i]!);
      a[i] = x0[i]! * S;
      b[i] = x1[i]! * S;
    }
    return [a, b] as [Float64Array, Float64Array];
  };

  const ours: HostRuleSet = {
    name: 'ours',
    // α1β0 with one shared denominator: X⁺·W⁺ᵀ + X⁻·W⁻ᵀ = (X·Wᵀ + |X|·|W|ᵀ)/2 and likewise for the numerator.
    async linear(layer, x, R, xW) {
      const ax = x.map(Math.abs);
      const zAbs = await forwardLike(layer, ax, 'abs');
      const S = new Float64Array(R.length);
      for (let i = 0; i < S.length; i++) S[i] = safeDiv(R[i]!, (xW[i]! + zAbs[i]!) * 0.5);
      const c = await backwardLike(layer, S);
      const cAbs = await backwardLike(layer, S, 'abs');
      const out = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = (x[i]! * c[i]! + ax[i]! * cAbs[i]!) * 0.5;
      return out;
    },
    // The z-rule, then both shares rescaled to their |z-rule totals|' parts of the incoming total.
    add(x0, x1, R, z) {
      const [a, b] = zShares(x0, x1, R, z);
      const A = sum(a);
      const Bs = sum(b);
      const total = sum(R);
      const fa = safeDiv(Math.abs(A), Math.abs(A) + Math.abs(Bs)) * total;
      const fb = safeDiv(Math.abs(Bs), Math.abs(A) + Math.abs(Bs)) * total;
      const ka = safeDiv(fa, A);
      const kb = safeDiv(fb, Bs);
      for (let i = 0; i < a.length; i++) {
        a[i]! *= ka;
        b[i]! *= kb;
      }
      return [a, b];
    },
  };

  const lrp: HostRuleSet = {
    name: 'lrp',
    // Each sign half with its own denominator (quirk Q5).
    async linear(layer, x, R) {
      const xp = x.map((v) => Math.max(v, 0));
      const xn = x.map((v) => Math.min(v, 0));
      const zp = await forwardLike(layer, xp, 'pos');
      const zn = await forwardLike(layer, xn, 'neg');
      const cp = await backwardLike(layer, safeDivAll(R, zp), 'pos');
      const cn = await backwardLike(layer, safeDivAll(R, zn), 'neg');
      const out = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = xp[i]! * cp[i]! + xn[i]! * cn[i]!;
      return out;
    },
    add: zShares,
  };
  return { ours, lrp };
}

/** Clone: R_in = X ⊙ Σ_k safe_divide(R_k, X). */
export function cloneRuleF64(x: Float64Array, Rs: Float64Array[]): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let acc = 0;
    for (const R of Rs) acc += safeDiv(R[i]!, x[i]!);
    out[i] = x[i]! * acc;
  }
  return out;
}

/** CLS pooling: the kept token gets X ⊙ safe_divide(R, X). */
export function poolRuleF64(x0: Float64Array, R: Float64Array): Float64Array {
  return x0.map((x, i) => x * safeDiv(R[i]!, x));
}

/**
 * Z-rule for per-group products Z = A·B (A [g, n, k], B [g, k, m], Z the forward's A·B): R_A = A ⊙ (S·Bᵀ),
 * R_B = B ⊙ (Aᵀ·S), S = safe_divide(R, Z).
 */
export async function productRuleF64(
  matmul: F64MatMul,
  A: Float64Array,
  B: Float64Array,
  R: Float64Array,
  Z: Float64Array,
  [g, n, k, m]: [number, number, number, number],
): Promise<[Float64Array, Float64Array]> {
  const S = safeDivAll(R, Z);
  const cA = await matmul(S, transposeGroups(B, g, k, m), g, n, m, k);
  const cB = await matmul(transposeGroups(A, g, n, k), S, g, k, n, m);
  return [A.map((v, i) => v * cA[i]!), B.map((v, i) => v * cB[i]!)];
}

/**
 * Z-rule for Z = A·Bᵀ (the attention scores q·kᵀ; A, B [g, n, k], Bt = Bᵀ [g, k, n]): R_A = A ⊙ (S·B),
 * R_B = B ⊙ (Sᵀ·A).
 */
export async function productTransposedRuleF64(
  matmul: F64MatMul,
  A: Float64Array,
  B: Float64Array,
  R: Float64Array,
  Z: Float64Array,
  [g, n, k]: [number, number, number],
): Promise<[Float64Array, Float64Array]> {
  const S = safeDivAll(R, Z);
  const cA = await matmul(S, B, g, n, n, k);
  const cB = await matmul(transposeGroups(S, g, n, n), A, g, n, n, k);
  return [A.map((v, i) => v * cA[i]!), B.map((v, i) => v * cB[i]!)];
}

/**
 * The zᴮ rule of the input conv on one sample's im2col patches [P, in] (./common.ts zBoxRule): bounds lo/hi the
 * sample's min/max, a plain +1e-9 in the denominator; `product` the forward's patches·Wᵀ. → relevance [P, in].
 */
export async function zBoxRuleF64(
  matmul: F64MatMul,
  layer: HostLinear,
  patches: Float64Array,
  R: Float64Array,
  lo: number,
  hi: number,
  product: Float64Array,
): Promise<Float64Array> {
  const { inDim, outDim, Wt } = layer;
  // conv(Lo, W⁺) for a constant image Lo is lo · Σ_in W⁺ per output channel.
  const sumPos = new Float64Array(outDim);
  const sumNeg = new Float64Array(outDim);
  for (let i = 0; i < inDim; i++)
    for (let o = 0; o < outDim; o++) {
      const w = Wt[i * outDim + o]!;
      if (w > 0) sumPos[o]! += w;
      else sumNeg[o]! += w;
    }
  const S = new Float64Array(R.length);
  for (let i = 0; i < S.length; i++) {
    const o = i % outDim;
    S[i] = R[i]! / (product[i]! - lo * sumPos[o]! - hi * sumNeg[o]! + 1e-9);
  }
  const M = R.length / outDim;
  const back = (part?: 'pos' | 'neg') => matmul(S, Wt, 1, M, outDim, inDim, { part, transposed: true });
  const [c, cPos, cNeg] = [await back(), await back('pos'), await back('neg')];
  return patches.map((x, i) => x * c[i]! - lo * cPos[i]! - hi * cNeg[i]!);
}
