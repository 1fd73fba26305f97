import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PerturbSummary } from '../src/benchmarks/perturbation.js';
import type { CodeVersion } from '../src/util/code-version.js';
import { bench } from './helpers/cli.js';

// No paths at all: bench perturb explains the embedded image folder with the embedded model (bench visualize),
// then runs both perturbation tests on it.
test('bench perturb with no paths: embedded folder and model, meaningful AUCs', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-perturb-embedded-'));
  const r = bench(['perturb', '--out', 'pert', '--quiet'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /explaining the embedded image folder first/);
  assert.ok(
    existsSync(
      join(cwd, 'results/visualize/vit_shapes_tiny/embedded-default/transformer_attribution/top/results.hdf5'),
    ),
  );
  const s = JSON.parse(readFileSync(join(cwd, 'pert', 'summary.json'), 'utf8')) as PerturbSummary;
  assert.equal(Object.keys(s.results).length, 6);
  for (const name of ['png', 'svg']) assert.ok(existsSync(join(cwd, 'pert', `perturbation.${name}`)));
  const ta = s.results.transformer_attribution!.top!;
  assert.equal(ta.negative!.images, 24);
  assert.equal(ta.negative!.accuracy[0], 1);
  // Removing the least relevant pixels first keeps the prediction; removing the most relevant first destroys it.
  assert.ok(ta.negative!.auc > 75, `negative AUC ${ta.negative!.auc}`);
  assert.ok(ta.positive!.auc < 40, `positive AUC ${ta.positive!.auc}`);
  // As in the paper, the method beats GradCAM on the positive test.
  assert.ok(ta.positive!.auc < s.results.gradcam!.top!.positive!.auc);
});

// The embedded explanations are a cache: reused by the same code only (issue 12), so that a change to the
// methods is never measured on the maps of the code before it. A changed code version is faked by editing
// the key the cache was stored with.
test('bench perturb with no paths reuses the embedded explanations of the same code version only', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-perturb-cache-'));
  const args = ['perturb', '--method', 'rollout', '--limit', '2', '--quiet'];
  const madeBy = join(cwd, 'results/visualize/vit_shapes_tiny/embedded-default/made-by.json');
  const first = bench([...args, '--out', 'p1'], { cwd });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /explaining the embedded image folder first/);
  const key = JSON.parse(readFileSync(madeBy, 'utf8')) as { code: CodeVersion; backend: string };
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal(key.code.version, pkg.version);
  assert.match(key.code.hash, /^[0-9a-f]{64}$/);

  const second = bench([...args, '--out', 'p2'], { cwd });
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /explaining the embedded image folder/);

  writeFileSync(madeBy, JSON.stringify({ ...key, code: { ...key.code, hash: '0'.repeat(64) } }));
  const third = bench([...args, '--out', 'p3'], { cwd });
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /embedded-default was made by other code, .*; making it again/);
  assert.match(third.stderr, /explaining the embedded image folder first/);
  assert.deepEqual(JSON.parse(readFileSync(madeBy, 'utf8')), key);
  // Same maps, so the same numbers as the first run.
  const auc = (out: string) =>
    (JSON.parse(readFileSync(join(cwd, out, 'summary.json'), 'utf8')) as PerturbSummary).results.rollout!.top;
  assert.deepEqual(auc('p3'), auc('p1'));
});
