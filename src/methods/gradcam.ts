import * as tf from '../engine/tf.js';
import { clsRow, minMaxPerSample, setFirst } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * GradCAM on the last block's attention (docs/methods.md#gradcam, #methods-on-bert; quirk Q14). Each head's
 * attention is weighted by the mean of its gradient, averaged over heads, clamped at 0 and min–max normalised
 * (inside the method, as the reference does). ViT: only the CLS row's patch columns, for both the weights and the
 * map. BERT: the weights average the gradient over the whole N×N matrix, the whole matrix is normalised, then the
 * CLS row is read with [CLS] set to 0.
 */
export const gradcam: ExplanationMethod = {
  name: 'gradcam',
  aliases: ['attn_gradcam'],
  paperName: 'GradCAM',
  summary: "last block's attention weighted by its mean gradient per head, clamped, min–max normalised",
  classFrom: 'classifier',
  resolution: 'patches',
  needs: (info) => [{ kind: 'gradients', head: 'classifier', downTo: info.depth - 1 }],
  compute(ctx) {
    const last = ctx.depth - 1;
    const A = ctx.attention(last);
    const G = ctx.gradient('classifier', last);
    const [B, H, N] = A.shape;
    if (ctx.family === 'bert') {
      const w = tf.mean(G, [2, 3], true);
      const cam = tf.relu(tf.mean(tf.mul(A, w), 1)) as tf.Tensor3D;
      const normalized = minMaxPerSample(cam).normalized as tf.Tensor3D;
      return setFirst(clsRow(normalized), 0);
    }
    const row = (t: tf.Tensor4D) => tf.reshape(tf.slice(t, [0, 0, 0, 1], [B, H, 1, N - 1]), [B, H, N - 1]);
    const w = tf.mean(row(G), -1, true);
    const cam = tf.relu(tf.mean(tf.mul(row(A), w), 1));
    return minMaxPerSample(cam).normalized;
  },
};
