import { hostReadable } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import { forwardPrecision } from '../models/forward-precision.js';
import type { ModelInfo } from './model-pass.js';
import type { MethodOptions } from './types.js';

/** Helpers that turn per-block [B, H, N, N] matrices into per-token maps; shared by several methods. */

/** Row of the CLS query: [B, N, N] → [B, N]. */
export function clsRow(m: tf.Tensor3D): tf.Tensor2D {
  const [B, , N] = m.shape;
  return tf.reshape(tf.slice(m, [0, 0, 0], [B, 1, N]), [B, N]) as tf.Tensor2D;
}

/** The patch columns of a per-token row (ViT drops the CLS column): [B, N] → [B, N−1]. */
export function patchColumns(row: tf.Tensor2D): tf.Tensor2D {
  const [B, N] = row.shape;
  return tf.slice(row, [0, 1], [B, N - 1]);
}

/** Replace column 0 of [B, N] by `value` ([B, 1] or a number). BERT read-outs do this to the [CLS] entry. */
export function setFirst(row: tf.Tensor2D, value: tf.Tensor2D | number): tf.Tensor2D {
  const [B, N] = row.shape;
  const first = typeof value === 'number' ? tf.fill([B, 1], value) : value;
  return tf.concat([first, tf.slice(row, [0, 1], [B, N - 1])], 1) as tf.Tensor2D;
}

/** The reference's per-family read-out of a CLS row: ViT keeps the patch columns, BERT every token with [CLS] set to 0. */
export function readOut(row: tf.Tensor2D, info: ModelInfo): tf.Tensor2D {
  return info.family === 'vit' ? patchColumns(row) : setFirst(row, 0);
}

/** mean over heads of max(x, 0): [B, H, N, N] → [B, N, N] (clamp before the mean, as the reference). */
export function headMeanPositive(x: tf.Tensor4D): tf.Tensor3D {
  return tf.mean(tf.relu(x), 1) as tf.Tensor3D;
}

/**
 * Row 0 of an attention rollout from block `start` to the last: J = M_start, then J = M_l · J for
 * l > start, with M_l = Ā_l + I, optionally row-normalised (quirk Q2). Only row 0 (the CLS query) of J
 * is ever used, so the product is evaluated as a row vector times the matrices from the last block down:
 * the same numbers for a fraction of the N³ work. mats[l] = Ā_l as [B, N, N] for l = start … L−1.
 */
export function rolloutRow0(mats: tf.Tensor3D[], normalizeRows: boolean): tf.Tensor2D {
  // With the float64 forward (--forward f64), the rollout is evaluated in float64 too where tensors can be read
  // synchronously: its products of float32 attention maps would otherwise add float32 noise of the size the
  // official code has (measured on golden G3 smooth: 6.5e-7 of max against the official 4.2e-7).
  if (forwardPrecision() === 'f64' && hostReadable()) return rolloutRow0F64(mats, normalizeRows);
  const [B, N] = mats[0]!.shape;
  const eye = tf.expandDims(tf.eye(N), 0);
  let row = tf.tile(tf.reshape(tf.oneHot([0], N).toFloat(), [1, 1, N]), [B, 1, 1]) as tf.Tensor3D;
  for (let i = mats.length - 1; i >= 0; i--) {
    let M = tf.add(mats[i]!, eye) as tf.Tensor3D;
    if (normalizeRows) M = tf.div(M, tf.sum(M, -1, true));
    row = tf.matMul(row, M);
  }
  return tf.reshape(row, [B, N]) as tf.Tensor2D;
}

/** rolloutRow0 in float64 on the host: the same products, each value accumulated in float64 and rounded once. */
function rolloutRow0F64(mats: tf.Tensor3D[], normalizeRows: boolean): tf.Tensor2D {
  const [B, N] = mats[0]!.shape;
  const data = mats.map((m) => m.dataSync() as Float32Array);
  const out = new Float32Array(B * N);
  const M = new Float64Array(N * N);
  for (let b = 0; b < B; b++) {
    let row = new Float64Array(N);
    row[0] = 1;
    for (let i = mats.length - 1; i >= 0; i--) {
      const a = data[i]!.subarray(b * N * N, (b + 1) * N * N);
      for (let r = 0; r < N; r++) {
        let sum = 0;
        for (let c = 0; c < N; c++) {
          const v = a[r * N + c]! + (r === c ? 1 : 0);
          M[r * N + c] = v;
          sum += v;
        }
        if (normalizeRows) for (let c = 0; c < N; c++) M[r * N + c]! /= sum;
      }
      const next = new Float64Array(N);
      for (let k = 0; k < N; k++) {
        const rk = row[k]!;
        if (rk === 0) continue;
        for (let c = 0; c < N; c++) next[c]! += rk * M[k * N + c]!;
      }
      row = next;
    }
    for (let c = 0; c < N; c++) out[b * N + c] = row[c]!;
  }
  return tf.tensor2d(out, [B, N]);
}

/**
 * The first block of a rollout: the user's --start-layer, else the reference's default for the method
 * and model family (ViT scripts: 1; BERT: `bertDefault`), checked against the depth.
 */
export function startLayer(info: ModelInfo, opts: MethodOptions, bertDefault: number): number {
  const s = opts.startLayer ?? (info.family === 'vit' ? 1 : bertDefault);
  if (!Number.isInteger(s) || s < 0 || s >= info.depth) {
    throw new Error(`--start-layer ${s} is out of range: the model has ${info.depth} blocks (0 … ${info.depth - 1})`);
  }
  return s;
}

/**
 * Min–max normalisation per sample: (x − min) / (max − min). A constant map (where the reference would
 * produce 0/0 = NaN) becomes all zeros; `constant` marks those samples so callers can warn.
 */
export function minMaxPerSample(x: tf.Tensor): { normalized: tf.Tensor; constant: boolean[] } {
  const B = x.shape[0]!;
  const flat = tf.reshape(x, [B, -1]);
  const lo = tf.min(flat, 1, true);
  const hi = tf.max(flat, 1, true);
  const range = tf.sub(hi, lo);
  const ok = tf.greater(range, 0);
  const normalized = tf.reshape(
    tf.where(ok, tf.div(tf.sub(flat, lo), tf.where(ok, range, tf.onesLike(range))), tf.zerosLike(flat)),
    x.shape,
  );
  // Read only when asked for (a synchronous read, which the webgpu backend cannot do).
  return {
    normalized,
    get constant() {
      return Array.from(ok.dataSync(), (v) => !v);
    },
  };
}
