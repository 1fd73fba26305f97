import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GOLDEN, listGolden, readJson, vitGoldenCases, vitGoldenConfigs } from './helpers/golden.js';

/**
 * The golden cases the suite compares with, counted and printed, so that a run's log says how much of the
 * official code's output it was held to. Every kind must be there: a golden folder that lost a kind fails.
 */
test('golden inventory: every kind of golden case is present, and the count is printed', (t) => {
  const vit = vitGoldenConfigs().map((c) => [c, vitGoldenCases(c)] as const);
  const bertCases = listGolden('bert').filter((d) => !d.includes('.'));
  const bertSequences = bertCases.map(
    (c) => (readJson<{ sequences?: unknown[] }>('bert', c, 'meta.json').sequences ?? []).length,
  );
  const eraser = listGolden('eraser').filter((d) => !d.includes('.'));
  const segMetrics = listGolden('metrics', 'segmentation').filter((d) => !d.includes('.'));
  const perturbMetrics = listGolden('metrics').filter((d) => d.startsWith('perturbation_'));
  const e2e = listGolden('e2e');
  const counts: [string, number][] = [
    ['ViT models × input cases (every method, top and target class)', vit.reduce((n, [, c]) => n + c.length, 0)],
    ['BERT models', bertCases.length],
    ['BERT sequences', bertSequences.reduce((a, b) => a + b, 0)],
    ['ERASER pipeline cases', eraser.length],
    ['segmentation-metric runs', segMetrics.length],
    ['perturbation-metric cases', perturbMetrics.length],
    ['end-to-end runs of the official scripts', e2e.length],
  ];
  t.diagnostic(`golden data: ${GOLDEN}`);
  for (const [what, n] of counts) t.diagnostic(`golden ${what}: ${n}`);
  t.diagnostic(`golden cases in all: ${counts.filter(([w]) => w !== 'BERT sequences').reduce((a, [, n]) => a + n, 0)}`);
  for (const [what, n] of counts) assert.ok(n > 0, `no ${what} in ${GOLDEN}`);
  assert.deepEqual(e2e, ['perturb_G2', 'perturb_S1', 'seg_G2', 'seg_S1']);
});
