import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bench } from './cli.js';

/** `bench perturb --json`: per method, class choice and setting, the per-step accuracies and the AUC. */
export type PerturbJson = Record<
  string,
  Record<string, Record<'negative' | 'positive', { accuracy: number[]; auc: number }>>
>;

/** `bench perturb` (both settings) on the files `bench visualize` wrote to visDir, output under dir/name: its JSON. */
export function perturbFiles(dir: string, visDir: string, name: string, model: string[]): PerturbJson {
  const json = join(dir, `${name}.json`);
  const p = bench(['perturb', '--vis-dir', visDir, ...model, '--out', join(dir, name), '--json', json, '--quiet']);
  assert.equal(p.code, 0, p.stderr);
  return JSON.parse(readFileSync(json, 'utf8')) as PerturbJson;
}

/**
 * `bench visualize` with these arguments (data, methods, class choice, forward…) into dir/vis-<name>, then
 * `bench perturb` on its files (perturbFiles, into dir/pert-<name>).
 */
export function visualizeThenPerturb(dir: string, name: string, model: string[], visualize: string[]): PerturbJson {
  const out = join(dir, `vis-${name}`);
  const v = bench(['visualize', ...visualize, ...model, '--out', out, '--quiet']);
  assert.equal(v.code, 0, v.stderr);
  return perturbFiles(dir, out, `pert-${name}`, model);
}
