import { clsRow, headMeanPositive, readOut } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * Partial LRP (Voita et al.): LRP relevance of the last block's attention under the plain LRP rules,
 * positive part averaged over heads, CLS row (docs/methods.md#partial-lrp, #methods-on-bert).
 */
export const partialLrp: ExplanationMethod = {
  name: 'partial_lrp',
  aliases: ['lrp_last_layer', 'last_layer'],
  paperName: 'partial LRP',
  summary: "LRP (plain rules) relevance of the last block's attention, head mean of its positive part",
  classFrom: 'lrp',
  resolution: 'patches',
  needs: (info) => [{ kind: 'relevance', rules: 'lrp', stop: info.depth - 1 }],
  compute(ctx) {
    return readOut(clsRow(headMeanPositive(ctx.attnCam('lrp', ctx.depth - 1))), ctx.info);
  },
};
