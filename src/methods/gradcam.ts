import * as tf from '@tensorflow/tfjs';
import { minMaxPerSample } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * GradCAM on the last block's attention (`generate_cam_attn`, ALGORITHMS.md §3.3(e)): each head's CLS-row
 * attention to the patches is weighted by the mean of its gradient over those same entries (quirk Q14),
 * averaged over heads, clamped at 0 and min–max normalised (inside the method, as the reference does).
 */
export const gradcam: ExplanationMethod = {
  name: 'gradcam',
  aliases: ['attn_gradcam'],
  paperName: 'GradCAM',
  summary: "last block's CLS-row attention weighted by its mean gradient per head, clamped, min–max normalised",
  classFrom: 'classifier',
  resolution: 'patches',
  needs: (model) => [{ kind: 'gradients', head: 'classifier', downTo: model.depth - 1 }],
  compute(ctx) {
    const last = ctx.model.depth - 1;
    const A = ctx.attention(last);
    const [B, H, N] = A.shape;
    const row = (t: tf.Tensor4D) => tf.reshape(tf.slice(t, [0, 0, 0, 1], [B, H, 1, N - 1]), [B, H, N - 1]);
    const a = row(A);
    const w = tf.mean(row(ctx.gradient('classifier', last)), -1, true);
    const cam = tf.relu(tf.mean(tf.mul(a, w), 1));
    return minMaxPerSample(cam).normalized;
  },
};
