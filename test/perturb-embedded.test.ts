import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PerturbSummary } from '../src/benchmarks/perturbation.js';
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
