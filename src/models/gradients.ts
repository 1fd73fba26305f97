import type * as tf from '@tensorflow/tfjs';

/**
 * What the hand-written backward passes of both model families return: ∂⟨logits, seed⟩/∂A_l per block, [B·H, N, N]
 * (undefined for the blocks below the lowest one asked for), and, when asked to go down to 'input', the gradient at
 * the first block's input, [B·N, D]: the embeddings (ViT: token embeddings after the position add; BERT: the
 * embedding output, hidden_states[0]).
 */
export interface AttentionGradients {
  attn: (tf.Tensor3D | undefined)[];
  input?: tf.Tensor2D;
}
