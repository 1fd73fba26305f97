import * as tf from '@tensorflow/tfjs';
import { headMeanPositive, rolloutClsRow } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * The paper's method (ALGORITHMS.md §3.3(a)): per block, Ā = mean over heads of max(∇A ⊙ R_A, 0) with R_A
 * the relevance of the attention under the paper's rules, then rollout WITHOUT row normalisation from
 * `startLayer` up; CLS row, patch columns.
 */
export const transformerAttribution: ExplanationMethod = {
  name: 'transformer_attribution',
  aliases: ['grad', 'ours'],
  paperName: 'ours',
  summary: "the paper's method: gradient-weighted LRP relevance of every block's attention, rolled out",
  classFrom: 'lrp',
  resolution: 'patches',
  needs: (_model, opts) => [
    { kind: 'gradients', head: 'lrp', downTo: opts.startLayer },
    { kind: 'relevance', rules: 'ours', stop: opts.startLayer },
  ],
  compute(ctx, opts) {
    const mats: tf.Tensor3D[] = [];
    for (let l = opts.startLayer; l < ctx.model.depth; l++) {
      mats.push(headMeanPositive(tf.mul(ctx.gradient('lrp', l), ctx.attnCam('ours', l))));
    }
    return rolloutClsRow(mats, false);
  },
};
