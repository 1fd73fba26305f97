import * as tf from '../engine/tf.js';
import { headMeanPositive, patchColumns, rolloutRow0, setFirst, startLayer } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * The paper's method (docs/methods.md#transformer-attribution, #methods-on-bert): per block, Ā = mean over heads of
 * max(∇A ⊙ R_A, 0) with R_A the relevance of the attention under the paper's rules, rolled out from the start layer
 * up. ViT: WITHOUT row normalisation, start 1, patch columns of the CLS row. BERT: row-normalised, start at the
 * last layer (the pipeline's default), the whole CLS row with its [CLS] entry set to the row's minimum.
 */
export const transformerAttribution: ExplanationMethod = {
  name: 'transformer_attribution',
  aliases: ['grad', 'ours'],
  paperName: 'ours',
  summary: "the paper's method: gradient-weighted LRP relevance of every block's attention, rolled out",
  classFrom: 'lrp',
  resolution: 'patches',
  needs: (info, opts) => {
    const s = startLayer(info, opts, info.depth - 1);
    return [
      { kind: 'gradients', head: 'lrp', downTo: s },
      { kind: 'relevance', rules: 'ours', stop: s },
    ];
  },
  compute(ctx, opts) {
    const mats: tf.Tensor3D[] = [];
    for (let l = startLayer(ctx.info, opts, ctx.depth - 1); l < ctx.depth; l++) {
      mats.push(headMeanPositive(tf.mul(ctx.gradient('lrp', l), ctx.attnCam('ours', l))));
    }
    if (ctx.family === 'vit') return patchColumns(rolloutRow0(mats, false));
    const row = rolloutRow0(mats, true);
    return setFirst(row, tf.min(row, 1, true) as tf.Tensor2D);
  },
};
