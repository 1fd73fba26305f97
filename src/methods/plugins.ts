import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RULE_SETS } from '../rules/index.js';
import { METHODS, resolveMethods } from './registry.js';
import type { ExplanationMethod } from './types.js';

/**
 * Plug-in explanation methods: `--method ./my-method.ts` (or .js/.mjs). The file's default export is an
 * ExplanationMethod (docs/writing-a-method.md); it is checked here when loaded, and its output is checked after
 * each pass (checkMethodOutput). Every problem is one error line naming the file.
 */

/** A `--method` value that names a file rather than a built-in: it has a path separator or a module extension. */
export function isPluginSpec(spec: string): boolean {
  return /[/\\]/.test(spec) || /\.(ts|mts|js|mjs|cjs)$/.test(spec);
}

/** A plug-in problem: one line, naming the file. */
export class PluginError extends Error {
  override name = 'PluginError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`plug-in method ${file}: ${problem}`);
  }
}

/** Where each loaded plug-in came from (built-ins have no entry). */
const SOURCES = new WeakMap<ExplanationMethod, string>();

/** The file a plug-in method was loaded from; undefined for a built-in. */
export function pluginFile(m: ExplanationMethod): string | undefined {
  return SOURCES.get(m);
}

const loaded = new Map<string, Promise<ExplanationMethod>>();

/** Load and check one plug-in file (absolute or relative to the working directory); each file is loaded once. */
export function loadPlugin(spec: string): Promise<ExplanationMethod> {
  const file = resolve(spec);
  let p = loaded.get(file);
  if (!p) {
    p = importPlugin(file);
    loaded.set(file, p);
  }
  return p;
}

/**
 * The methods of `--method` values: built-in names, aliases, 'all', 'paper' and plug-in files, in the order given,
 * duplicates dropped. Also returns the plug-in files (absolute), which worker threads load again by path.
 */
export async function loadMethods(
  specs: readonly string[],
): Promise<{ methods: ExplanationMethod[]; pluginFiles: string[] }> {
  const parts = specs
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  const methods: ExplanationMethod[] = [];
  const pluginFiles: string[] = [];
  for (const s of parts) {
    if (isPluginSpec(s)) {
      const m = await loadPlugin(s);
      const clash = methods.find((x) => x !== m && x.name === m.name && SOURCES.has(x));
      if (clash) throw new PluginError(resolve(s), `its name '${m.name}' is also the name of ${SOURCES.get(clash)}`);
      if (!methods.includes(m)) methods.push(m);
      if (!pluginFiles.includes(resolve(s))) pluginFiles.push(resolve(s));
    } else {
      for (const m of resolveMethods([s])) if (!methods.includes(m)) methods.push(m);
    }
  }
  if (methods.length === 0) resolveMethods([]); // the registry's "no method given" error
  return { methods, pluginFiles };
}

/**
 * Resolve method names (no files) among the built-ins and already loaded plug-ins: what worker threads do with the
 * names the main thread hands them, after loading the same plug-in files.
 */
function resolveWithPlugins(names: readonly string[], plugins: readonly ExplanationMethod[]): ExplanationMethod[] {
  return names.map((n) => plugins.find((p) => p.name === n) ?? resolveMethods([n])[0]!);
}

/** The plug-in files among `methods` (absolute paths), for worker threads to import by path. */
export function pluginFiles(methods: readonly ExplanationMethod[]): string[] {
  return methods.flatMap((m) => SOURCES.get(m) ?? []);
}

/**
 * In a worker thread: the methods named by the main thread, after importing its plug-in files. Each plug-in is
 * checked again here (the worker has its own module graph).
 */
export async function methodsInWorker(
  names: readonly string[],
  files: readonly string[],
): Promise<ExplanationMethod[]> {
  const plugins = await Promise.all(files.map(loadPlugin));
  return resolveWithPlugins(names, plugins);
}

/** Names a plug-in may not take: the built-ins' names and aliases, and the group words. */
function reservedNames(): Set<string> {
  return new Set([...METHODS.flatMap((m) => [m.name, ...m.aliases]), 'all', 'paper']);
}

async function importPlugin(file: string): Promise<ExplanationMethod> {
  if (!existsSync(file) || !statSync(file).isFile()) throw new PluginError(file, 'no such file');
  if (!/\.(ts|mts|js|mjs)$/.test(file))
    throw new PluginError(
      file,
      'expected a .ts, .mts, .js or .mjs module (an ES module whose default export is the method)',
    );
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(file);
  } catch (e) {
    throw new PluginError(file, `cannot be loaded: ${firstLine(e)}`);
  }
  const m = mod.default;
  if (m === undefined)
    throw new PluginError(
      file,
      'no default export: write `export default { name, needs, compute, … } satisfies ExplanationMethod` (docs/writing-a-method.md)',
    );
  return checkShape(file, m);
}

/**
 * Import an ES module by path. A .ts file needs a TypeScript loader: the sources already run under tsx (npm test,
 * bin/bench.js on stale sources); the compiled CLI registers tsx's loader on the first .ts plug-in.
 */
let tsxRegistered = false;
async function importModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (tsxRegistered || !/\.m?ts$/.test(file) || code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw e;
  }
  const api = (await import('tsx/esm/api')) as { register: () => unknown };
  api.register();
  tsxRegistered = true;
  // A new URL: Node keeps the failed first attempt for the plain one.
  return (await import(`${url}?ts`)) as Record<string, unknown>;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

function checkShape(file: string, v: unknown): ExplanationMethod {
  const bad = (what: string): never => {
    throw new PluginError(file, `the default export is not an explanation method: ${what} (docs/writing-a-method.md)`);
  };
  if (typeof v !== 'object' || v === null) return bad(`got ${v === null ? 'null' : typeof v}, expected an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string' || !/^[A-Za-z][A-Za-z0-9_.-]*$/.test(o.name))
    bad("'name' must be a string of letters, digits, '_', '.', '-', starting with a letter (it names output folders)");
  const name = o.name as string;
  if (typeof o.needs !== 'function') bad("'needs' must be a function (model, options) → Need[]");
  if (typeof o.compute !== 'function') bad("'compute' must be a function (ctx, options) → tf.Tensor");
  if (!(o.classFrom === null || o.classFrom === 'lrp' || o.classFrom === 'classifier'))
    bad("'classFrom' must be 'classifier', 'lrp' or null");
  if (o.resolution !== undefined && o.resolution !== 'patches' && o.resolution !== 'pixels')
    bad("'resolution' must be 'patches' or 'pixels'");
  if (o.aliases !== undefined && !(Array.isArray(o.aliases) && o.aliases.every((a) => typeof a === 'string')))
    bad("'aliases' must be an array of strings");
  for (const k of ['paperName', 'summary'] as const)
    if (o[k] !== undefined && typeof o[k] !== 'string') bad(`'${k}' must be a string`);
  const aliases = (o.aliases as string[] | undefined) ?? [];
  const reserved = reservedNames();
  for (const n of [name, ...aliases]) {
    if (reserved.has(n)) {
      const builtin = METHODS.find((m) => m.name === n || m.aliases.includes(n));
      throw new PluginError(
        file,
        `its name '${n}' clashes with ${builtin ? `the built-in method ${builtin.name}` : `the method group '${n}'`}: choose another name`,
      );
    }
  }
  const m: ExplanationMethod = {
    name,
    aliases,
    paperName: (o.paperName as string | undefined) ?? name,
    summary: (o.summary as string | undefined) ?? `plug-in method (${file})`,
    classFrom: o.classFrom as ExplanationMethod['classFrom'],
    resolution: (o.resolution as ExplanationMethod['resolution'] | undefined) ?? 'patches',
    needs: (info, opts) => {
      const needs = guard(file, 'needs()', () => (o.needs as ExplanationMethod['needs']).call(o, info, opts));
      if (!Array.isArray(needs)) throw new PluginError(file, `needs() returned ${typeof needs}, expected an array`);
      for (const n of needs) checkNeed(file, n, info.depth);
      return needs;
    },
    compute: (ctx, opts) => {
      const out = guard(file, 'compute()', () => (o.compute as ExplanationMethod['compute']).call(o, ctx, opts));
      if (typeof out !== 'object' || out === null || typeof (out as { size?: unknown }).size !== 'number')
        throw new PluginError(file, `compute() returned ${out === null ? 'null' : typeof out}, expected a tf.Tensor`);
      return out;
    },
  };
  SOURCES.set(m, file);
  return m;
}

/** Run a plug-in's function; whatever it throws becomes one line naming the file. */
function guard<T>(file: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PluginError) throw e;
    throw new PluginError(file, `${what} failed: ${firstLine(e)}`);
  }
}

function checkNeed(file: string, n: unknown, depth: number): void {
  const o = (n ?? {}) as Record<string, unknown>;
  const block = (v: unknown) => v === 'input' || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < depth);
  const ok =
    (o.kind === 'gradients' && (o.head === 'lrp' || o.head === 'classifier') && block(o.downTo)) ||
    (o.kind === 'relevance' && typeof o.rules === 'string' && o.rules in RULE_SETS && block(o.stop));
  if (!ok)
    throw new PluginError(
      file,
      `needs() returned ${JSON.stringify(n)}: expected { kind: 'gradients', head: 'classifier'|'lrp', downTo } or { kind: 'relevance', rules: ${Object.keys(
        RULE_SETS,
      )
        .map((r) => `'${r}'`)
        .join('|')}, stop }, with a block in 0 … ${depth - 1} or 'input'`,
    );
}

/**
 * Check a method's output after the pass: `perSample` values for each of the `batch` samples, and (for a plug-in)
 * no NaN. A plug-in's problem names its file; a built-in's is an internal error.
 */
export function checkMethodOutput(m: ExplanationMethod, size: number, batch: number, perSample: number[]): void {
  const want = batch * perSample.reduce((a, b) => a * b, 1);
  if (size === want) return;
  const what = `compute() returned ${size} values for ${batch} sample(s); expected ${want} (${batch} × ${perSample.join(' × ')}${m.resolution === 'patches' ? ', the patch grid or one score per token' : ', the input pixels'})`;
  const file = SOURCES.get(m);
  throw file ? new PluginError(file, what) : new Error(`internal: method ${m.name}: ${what}`);
}

/** A plug-in's map with a NaN is an error naming the file; built-ins are not checked here. */
export function checkNoNaN(m: ExplanationMethod, rows: readonly Float32Array[]): void {
  const file = SOURCES.get(m);
  if (!file) return;
  for (const [i, r] of rows.entries()) {
    const k = r.findIndex((v) => Number.isNaN(v));
    if (k >= 0) throw new PluginError(file, `compute() returned NaN (sample ${i}, value ${k} of ${r.length})`);
  }
}
