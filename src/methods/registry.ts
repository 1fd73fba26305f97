import { genericAttention } from './generic-attention.js';
import { gradcam } from './gradcam.js';
import { lrp } from './lrp.js';
import { METHOD_NAMES, PAPER_METHOD_NAMES } from './names.js';
import { partialLrp } from './partial-lrp.js';
import { rawAttention } from './raw-attention.js';
import { rollout } from './rollout.js';
import { transformerAttribution } from './transformer-attribution.js';
import type { ExplanationMethod } from './types.js';

export { METHOD_NAMES, PAPER_METHOD_NAMES };

/**
 * The one method registry every command uses. A new method is one new file plus one line here (and its
 * name in names.ts).
 * Note: the reference scripts' `--method lrp` is in fact transformer attribution; here `lrp` is the
 * paper's "LRP" row (full LRP), and the scripts' names are accepted as aliases (full_lrp, lrp_last_layer,
 * attn_last_layer, attn_gradcam).
 */
export const METHODS: readonly ExplanationMethod[] = [
  rollout,
  rawAttention,
  gradcam,
  lrp,
  partialLrp,
  transformerAttribution,
  genericAttention,
];

/** The paper's six methods, the rows of its tables (`--method paper`). */
export const PAPER_METHODS: readonly ExplanationMethod[] = METHODS.filter((m) => PAPER_METHOD_NAMES.includes(m.name));

// names.ts lists the names for the command-line help, which must not load the methods themselves.
if (METHODS.map((m) => m.name).join() !== METHOD_NAMES.join())
  throw new Error(`methods/names.ts (${METHOD_NAMES.join(', ')}) does not match the registry`);

export function findMethod(name: string): ExplanationMethod {
  const m = METHODS.find((x) => x.name === name || x.aliases.includes(name));
  if (!m) {
    const aliases = METHODS.flatMap((x) => x.aliases.map((a) => `${a} (= ${x.name})`));
    throw new Error(
      `unknown method '${name}': expected one of ${METHOD_NAMES.join(', ')}, 'all', 'paper', a plug-in file (./my-method.ts), or an alias: ${aliases.join(', ')}`,
    );
  }
  return m;
}

/**
 * Resolve user-given built-in method names ('all' expands to the whole registry, 'paper' to the paper's six);
 * duplicates are dropped. Plug-in files are resolved by loadMethods (plugins.ts), which calls this for the rest.
 */
export function resolveMethods(names: readonly string[]): ExplanationMethod[] {
  const out: ExplanationMethod[] = [];
  for (const n of names
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean)) {
    for (const m of n === 'all' ? METHODS : n === 'paper' ? PAPER_METHODS : [findMethod(n)])
      if (!out.includes(m)) out.push(m);
  }
  if (out.length === 0)
    throw new Error(`no method given: expected one of ${METHOD_NAMES.join(', ')}, 'all' or 'paper'`);
  return out;
}
