import * as tf from '../engine/tf.js';
import { headMeanPositive, readOut, rolloutRow0 } from './aggregate.js';
import type { ExplanationMethod } from './types.js';

/**
 * The generic attention rule of the follow-up paper (Chefer, Gur, Wolf, ICCV 2021, rules 5 and 6 for
 * self-attention; docs/methods.md#generic-attention): with R = I, for every block in order,
 * R ← R + Ā_l · R where Ā_l = mean over heads of max(∇A_l ⊙ A_l, 0). No LRP: the gradient of the attention
 * probabilities weights the probabilities themselves. Then the CLS row of R.
 *
 * As the official code does it (Transformer_MM_explainability_ViT.ipynb, and the LXMERT generator for text):
 * - every block takes part, from the first: --start-layer does not apply;
 * - ViT: the gradient of the plain classifier (ViT_new, final LayerNorm eps 1e-6), whose top class is explained;
 *   the map is the CLS row's patch columns, then the usual upsampling and min–max;
 * - BERT: the CLS row over every token, with its own [CLS] entry set to 0 ("disregard the [CLS] token itself").
 * R = Π (I + Ā_l) is the rollout product without row normalisation, so only its CLS row is evaluated.
 */
export const genericAttention: ExplanationMethod = {
  name: 'generic_attention',
  aliases: ['generic', 'mm_generic'],
  paperName: 'generic attention (ICCV 2021)',
  summary: "the follow-up paper's rule: R ← R + mean_heads((∇A ⊙ A)⁺)·R over every block, CLS row",
  classFrom: 'classifier',
  resolution: 'patches',
  needs: () => [{ kind: 'gradients', head: 'classifier', downTo: 0 }],
  compute(ctx) {
    const mats: tf.Tensor3D[] = [];
    for (let l = 0; l < ctx.depth; l++) {
      mats.push(headMeanPositive(tf.mul(ctx.gradient('classifier', l), ctx.attention(l))));
    }
    return readOut(rolloutRow0(mats, false), ctx.info);
  },
};
