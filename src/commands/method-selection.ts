import { isPluginSpec, loadPlugin } from '../methods/plugins.js';
import { findMethod, resolveMethods } from '../methods/registry.js';
import { methodsInResults } from '../reports/report-page.js';
import type { ResultsIndex } from '../reports/results-index.js';
import { UsageError } from './options.js';

/**
 * The result names of `--method` values for the commands that read results (report, regress), in the order given,
 * duplicates dropped: built-in names and aliases (the built-in's name), 'all', 'paper', plug-in files (loaded and
 * checked: the name in their module), or the name of a method some finished run under the results folder holds (a
 * plug-in's results, without its file). Anything else is one error line naming it.
 */
export async function selectedMethodNames(specs: readonly string[], index: ResultsIndex): Promise<string[]> {
  const present = methodsInResults(index);
  const out: string[] = [];
  const add = (n: string) => {
    if (!out.includes(n)) out.push(n);
  };
  for (const s of specs
    .flatMap((x) => x.split(','))
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (isPluginSpec(s)) add((await loadPlugin(s)).name);
    else if (s === 'all' || s === 'paper' || isBuiltin(s)) for (const m of resolveMethods([s])) add(m.name);
    else if (present.has(s)) add(s);
    else
      throw new UsageError(
        `--method ${s}: unknown method: not a built-in name or alias, 'all', 'paper' or a plug-in file, and no finished run under ${index.root} holds it (${present.size ? `they hold ${[...present].join(', ')}` : 'none found'})`,
      );
  }
  if (out.length === 0) throw new UsageError('--method: no method given');
  return out;
}

function isBuiltin(name: string): boolean {
  try {
    findMethod(name);
    return true;
  } catch {
    return false;
  }
}
