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
  'generic_attention',
];

/** The six methods of the paper's tables (`--method paper`, `bench regress --suite paper`). */
export const PAPER_METHOD_NAMES: readonly string[] = METHOD_NAMES.slice(0, 6);

/** The words `--method` accepts besides method names: every built-in, or the paper's six. */
export const METHOD_GROUPS = { all: METHOD_NAMES, paper: PAPER_METHOD_NAMES } as const;

/** The `--method` help text shared by the commands. */
export function methodOptionHelp(prefix = 'method(s), repeatable or comma-separated'): string {
  return `${prefix}: ${METHOD_NAMES.join(', ')}; 'all' (every built-in), 'paper' (the paper's six: ${PAPER_METHOD_NAMES.join(', ')}), or a plug-in file ./my-method.ts|.js|.mjs (docs/writing-a-method.md)`;
}
