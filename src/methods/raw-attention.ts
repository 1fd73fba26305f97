import { clsRowPatches, headMeanPositive } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/** Raw attention of the last block: head mean of the CLS row (ALGORITHMS.md §3.3(d)). Forward only. */
export const rawAttention: ExplanationMethod = {
  name: 'raw_attention',
  aliases: ['attn_last_layer', 'last_layer_attn'],
  paperName: 'raw attention',
  summary: "last block's attention from the CLS token, averaged over heads (forward only)",
  classFrom: null,
  resolution: 'patches',
  needs: () => [],
  compute(ctx) {
    return clsRowPatches(headMeanPositive(ctx.attention(ctx.model.depth - 1)));
  },
};
