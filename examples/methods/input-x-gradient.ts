/**
 * Input × gradient at the embeddings, a plug-in method for bench (docs/writing-a-method.md):
 *
 *   npx bench seg --method ./examples/methods/input-x-gradient.ts --method transformer_attribution
 *
 * Per token, the sum over the embedding width of e ⊙ ∂y/∂e, where e is the input of the first block (ViT: the token
 * embeddings after the position add; BERT: the embedding output) and y the explained logit of the classifier.
 * ViT: the patch tokens' scores on the patch grid; BERT: one score per token, [CLS] set to 0 as the built-ins do.
 */
// In a project of your own: `import type { ExplanationMethod } from 'bench';` (types only: nothing is loaded).
import type { ExplanationMethod } from '../../src/index.js';

const inputXGradient: ExplanationMethod = {
  name: 'input_x_gradient',
  aliases: [],
  paperName: 'input × gradient',
  summary: 'embeddings times their gradient, summed over the embedding width',
  classFrom: 'classifier',
  resolution: 'patches',
  // One backward pass of the classifier tail through every block, down to the embeddings.
  needs: () => [{ kind: 'gradients', head: 'classifier', downTo: 'input' }],
  compute(ctx) {
    const { tf } = ctx;
    const scores = tf.sum(tf.mul(ctx.embeddings(), ctx.inputGradient('classifier')), -1); // [B, N]
    const [B, N] = scores.shape as [number, number];
    const rest = tf.slice(scores, [0, 1], [B, N - 1]);
    return ctx.family === 'vit' ? rest : tf.concat([tf.zeros([B, 1]), rest], 1);
  },
};

export default inputXGradient;
