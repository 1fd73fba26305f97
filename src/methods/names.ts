/**
 * The registry's method names, in its order, without the methods themselves: what the command-line
 * options list in their help. Kept apart from registry.ts so that `bench --help` does not load
 * TensorFlow.js; registry.ts checks at load time that the two lists agree.
 */
export const METHOD_NAMES: readonly string[] = [
  'rollout',
  'raw_attention',
  'gradcam',
  'lrp',
  'partial_lrp',
  'transformer_attribution',
];
