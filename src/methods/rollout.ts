import * as tf from '../engine/tf.js';
import { readOut, rolloutRow0, startLayer } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * Attention rollout (Abnar & Zuidema), the reference baseline `generate_rollout`: head-averaged attention
 * plus identity, each row divided by its sum, multiplied from the start layer up (docs/methods.md#rollout,
 * #methods-on-bert). Forward only; class-independent. Start layer: 1 in the ViT scripts, 0 for BERT.
 */
export const rollout: ExplanationMethod = {
  name: 'rollout',
  aliases: [],
  paperName: 'rollout',
  summary: 'attention rollout: row-normalised product of head-averaged attention + I (forward only)',
  classFrom: null,
  resolution: 'patches',
  needs: (info, opts) => {
    startLayer(info, opts, 0); // validates --start-layer before any pass runs
    return [];
  },
  compute(ctx, opts) {
    const mats: tf.Tensor3D[] = [];
    for (let l = startLayer(ctx.info, opts, 0); l < ctx.depth; l++)
      mats.push(tf.mean(ctx.attention(l), 1) as tf.Tensor3D);
    return readOut(rolloutRow0(mats, true), ctx.info);
  },
};
