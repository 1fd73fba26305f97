/**
 * An attention-only plug-in method for bench (docs/writing-a-method.md): how much the CLS token attends to each
 * token in the last block, taking the most attentive head. Forward only, and independent of the class.
 *
 *   npx bench eraser --method ./examples/methods/cls-attention-max.ts --method raw_attention
 */
// In a project of your own: `import type { ExplanationMethod } from 'bench';` (types only: nothing is loaded).
import type { ExplanationMethod } from '../../src/index.js';

const clsAttentionMax: ExplanationMethod = {
  name: 'cls_attention_max',
  aliases: [],
  paperName: 'CLS attention (max over heads)',
  summary: "last block's attention from the CLS token, maximum over heads",
  classFrom: null,
  resolution: 'patches',
  needs: () => [], // the forward pass only
  compute(ctx) {
    const { tf } = ctx;
    const A = ctx.attention(ctx.depth - 1); // [B, H, N, N]
    const [B, H, N] = A.shape;
    const clsRow = tf.max(tf.reshape(tf.slice(A, [0, 0, 0, 0], [B, H, 1, N]), [B, H, N]), 1); // [B, N]
    const rest = tf.slice(clsRow, [0, 1], [B, N - 1]);
    return ctx.family === 'vit' ? rest : tf.concat([tf.zeros([B, 1]), rest], 1);
  },
};

export default clsAttentionMax;
