import type * as tf from '@tensorflow/tfjs';
import type { RuleSetName } from '../rules/types.js';
import type { ModelInfo } from './model-pass.js';
import type { PassContext } from './pass.js';

/**
 * Which classifier tail chooses the "top" class and seeds the gradients. The reference runs each method
 * on one of three model files whose only difference in the forward pass is the final LayerNorm's eps
 * (quirk Q1): 'lrp' = ViT_LRP / ViT_orig_LRP (eps 1e-5), 'classifier' = ViT_new / timm (eps 1e-6).
 */
export type HeadKind = 'lrp' | 'classifier';

/**
 * What a method needs from the shared pass; the pass computes each thing once, as deep as the deepest need.
 * - gradients: ∂(explained logit of `head`)/∂A_l for the blocks l ≥ downTo (PassContext.gradient); downTo 'input'
 *   goes through every block to the embeddings, which also gives PassContext.inputGradient. One backward pass per
 *   head, as deep as the deepest need.
 * - relevance: LRP relevance under a rule set of the attention of the blocks l ≥ stop (PassContext.attnCam), or
 *   'input': through everything (PassContext.inputRelevance). One relevance walk per rule set.
 */
export type Need =
  | { kind: 'gradients'; head: HeadKind; downTo: number | 'input' }
  | { kind: 'relevance'; rules: RuleSetName; stop: number | 'input' };

export interface MethodOptions {
  /**
   * First block that enters the rollout-style aggregations. Undefined: each method's reference default
   * (ViT scripts: 1; BERT: the last layer for transformer attribution, 0 for rollout).
   */
  startLayer?: number;
}

export interface ExplanationMethod {
  /** Registry name (the one users type). */
  readonly name: string;
  /** Other accepted names, e.g. the reference scripts' `--method` values. */
  readonly aliases: readonly string[];
  /** The row name in the paper's tables. */
  readonly paperName: string;
  readonly summary: string;
  /** Whose logits pick the "top" class; null when the map does not depend on the class. */
  readonly classFrom: HeadKind | null;
  /**
   * ViT output: 'patches' = [B, gh·gw] on the patch grid, 'pixels' = [B, H, W] at input resolution.
   * (BERT output is always one score per token, [B, N], [CLS] included, as the reference returns it.)
   */
  readonly resolution: 'patches' | 'pixels';
  needs(model: ModelInfo, opts: MethodOptions): Need[];
  /** The raw map, before upsampling and min–max normalisation, one row per sample. */
  compute(ctx: PassContext, opts: MethodOptions): tf.Tensor;
}
