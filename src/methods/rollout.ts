import * as tf from '@tensorflow/tfjs';
import { rolloutClsRow } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * Attention rollout (Abnar & Zuidema), the reference baseline `generate_rollout`: head-averaged attention
 * plus identity, each row divided by its sum, multiplied from `startLayer` up (ALGORITHMS.md §3.3(b)).
 * Forward only; class-independent.
 */
export const rollout: ExplanationMethod = {
  name: 'rollout',
  aliases: [],
  paperName: 'rollout',
  summary: 'attention rollout: row-normalised product of head-averaged attention + I (forward only)',
  classFrom: null,
  resolution: 'patches',
  needs: () => [],
  compute(ctx, opts) {
    const mats: tf.Tensor3D[] = [];
    for (let l = opts.startLayer; l < ctx.model.depth; l++) mats.push(tf.mean(ctx.attention(l), 1) as tf.Tensor3D);
    return rolloutClsRow(mats, true);
  },
};
