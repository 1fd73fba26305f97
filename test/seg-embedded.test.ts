import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SegSummary } from '../src/benchmarks/segmentation.js';
import { bench } from './helpers/cli.js';

// The README's main job: no data or model paths, the embedded synthetic set and model.
test('bench seg --method transformer_attribution runs on the embedded default with meaningful numbers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-seg-embedded-'));
  const r = bench(['seg', '--method', 'transformer_attribution', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /model: embedded default/);
  assert.match(r.stderr, /data: embedded synthetic segmentation set/);
  const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as SegSummary;
  assert.equal(s.images, 32);
  const ta = s.methods.transformer_attribution!;
  // The maps localise the objects, far above what an uninformative map scores: the objects cover 8.7% of
  // the pixels on average, so predicting "all background" gives ~91% pixel accuracy but ~46% mIoU.
  assert.ok(ta.mIoU > 70, `mIoU ${ta.mIoU}`);
  assert.ok(ta.mAP > 95, `mAP ${ta.mAP}`);
  assert.ok(ta.pixelAccuracy > 93, `pixel accuracy ${ta.pixelAccuracy}`);
  assert.match(readFileSync(join(dir, 'summary.md'), 'utf8'), /\| transformer_attribution \| \d+\.\d\d \|/);
});
