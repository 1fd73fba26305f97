import * as tf from '@tensorflow/tfjs';

/** Helpers that turn per-block [B, H, N, N] matrices into per-patch maps; shared by several methods. */

/** Row of the CLS query, columns of the patch tokens: [B, N, N] → [B, N−1]. */
export function clsRowPatches(m: tf.Tensor3D): tf.Tensor2D {
  const [B, N] = m.shape;
  return tf.reshape(tf.slice(m, [0, 0, 1], [B, 1, N - 1]), [B, N - 1]) as tf.Tensor2D;
}

/** mean over heads of max(x, 0): [B, H, N, N] → [B, N, N] (clamp before the mean, as the reference). */
export function headMeanPositive(x: tf.Tensor4D): tf.Tensor3D {
  return tf.mean(tf.relu(x), 1) as tf.Tensor3D;
}

/**
 * Attention rollout from block `start` to the last: J = M_start, then J = M_l · J for l > start, with
 * M_l = Ā_l + I, optionally row-normalised (the baseline rollout; ALGORITHMS.md §3.3(a)/(b), quirk Q2).
 * Only row 0 (the CLS query) of J is ever used, so the product is evaluated as a row vector times the
 * matrices from the last block down: the same numbers for a fraction of the N³ work.
 * mats[l] is Ā_l as [B, N, N] for l = start … L−1. Returns the patch columns of that row, [B, N−1].
 */
export function rolloutClsRow(mats: tf.Tensor3D[], normalizeRows: boolean): tf.Tensor2D {
  const [B, N] = mats[0]!.shape;
  const eye = tf.expandDims(tf.eye(N), 0);
  let row = tf.tile(tf.reshape(tf.oneHot([0], N).toFloat(), [1, 1, N]), [B, 1, 1]) as tf.Tensor3D;
  for (let i = mats.length - 1; i >= 0; i--) {
    let M = tf.add(mats[i]!, eye) as tf.Tensor3D;
    if (normalizeRows) M = tf.div(M, tf.sum(M, -1, true));
    row = tf.matMul(row, M);
  }
  return tf.reshape(tf.slice(row, [0, 0, 1], [B, 1, N - 1]), [B, N - 1]) as tf.Tensor2D;
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
  const constant = Array.from(ok.dataSync(), (v) => !v);
  return { normalized, constant };
}
