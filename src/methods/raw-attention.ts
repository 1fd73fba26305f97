import * as tf from '../engine/tf.js';
import { clsRow, headMeanPositive, readOut } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * Raw attention of the last block: head mean of the CLS row (docs/methods.md#raw-attention, #methods-on-bert). ViT
 * clamps before the mean (a no-op on probabilities); BERT sets the [CLS] entry to 0. Forward only.
 */
export const rawAttention: ExplanationMethod = {
  name: 'raw_attention',
  aliases: ['attn_last_layer', 'last_layer_attn', 'last_attn'],
  paperName: 'raw attention',
  summary: "last block's attention from the CLS token, averaged over heads (forward only)",
  classFrom: null,
  resolution: 'patches',
  needs: () => [],
  compute(ctx) {
    const A = ctx.attention(ctx.depth - 1);
    const mean = ctx.family === 'vit' ? headMeanPositive(A) : (tf.mean(A, 1) as tf.Tensor3D);
    return readOut(clsRow(mean), ctx.info);
  },
};
