import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';

/**
 * The version of the running code: the package version and a SHA-256 of the module files of the tree it
 * runs from (src/**\/*.ts through tsx, dist/**\/*.js compiled), so that any change to the code changes
 * it. For outputs cached across runs (bench perturb's embedded explanations): a cache made by other code
 * is made again. Hashing the ~100 files takes a few milliseconds; computed once per process.
 */
export interface CodeVersion {
  version: string;
  /** SHA-256 (hex) over the module files' relative paths and contents, in sorted order. */
  hash: string;
}

/** The tree this module runs from: src/ or dist/. */
const CODE_ROOT = resolve(import.meta.dirname, '..');

let cached: CodeVersion | undefined;

export function codeVersion(): CodeVersion {
  cached ??= codeVersionOf(CODE_ROOT, resolve(CODE_ROOT, '..', 'package.json'));
  return cached;
}

/** The version of the code under `root` (its .ts and .js files, declarations aside) with `packageJson`'s version. */
export function codeVersionOf(root: string, packageJson: string): CodeVersion {
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  const files = (readdirSync(root, { recursive: true }) as string[])
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.split(sep).join('/'))
    .sort();
  const h = createHash('sha256');
  for (const f of files)
    h.update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0');
  return { version, hash: h.digest('hex') };
}
