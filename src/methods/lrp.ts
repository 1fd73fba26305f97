import * as tf from '../engine/tf.js';
import { setFirst } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * Full LRP under the plain LRP rules (docs/methods.md#full-lrp, #methods-on-bert). ViT: through every block, the
 * position add and the zᴮ rule at the patch embedding to the pixels; signed, summed over colour channels. BERT: to
 * the input of the first layer (the embeddings are not crossed), summed over the hidden size, [CLS] set to 0.
 */
export const lrp: ExplanationMethod = {
  name: 'lrp',
  aliases: ['full_lrp', 'full'],
  paperName: 'LRP',
  summary: 'full LRP (plain rules) through every block (ViT: and the patch embedding, to the pixels)',
  classFrom: 'lrp',
  resolution: 'pixels',
  needs: () => [{ kind: 'relevance', rules: 'lrp', stop: 'input' }],
  compute(ctx) {
    const r = ctx.inputRelevance('lrp');
    return ctx.family === 'vit' ? r : setFirst(tf.sum(r, 2) as tf.Tensor2D, 0);
  },
};
