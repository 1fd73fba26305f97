import type { ExplanationMethod } from './types.js';

/**
 * Full LRP to the input pixels under the plain LRP rules, with the zᴮ rule at the patch embedding;
 * signed, summed over colour channels, at input resolution (ALGORITHMS.md §3.3(h)).
 */
export const lrp: ExplanationMethod = {
  name: 'lrp',
  aliases: ['full_lrp', 'full'],
  paperName: 'LRP',
  summary: 'full LRP (plain rules) through every block and the patch embedding to the pixels',
  classFrom: 'lrp',
  resolution: 'pixels',
  needs: () => [{ kind: 'relevance', rules: 'lrp', stop: 'pixels' }],
  compute(ctx) {
    return ctx.pixels('lrp');
  },
};
