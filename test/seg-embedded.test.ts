import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { SegSummary } from '../src/benchmarks/segmentation.js';

const BIN = resolve(import.meta.dirname, '../bin/bench.js');

// The README's main job: no data or model paths, the embedded synthetic set and model.
test('bench seg --method transformer_attribution runs on the embedded default with meaningful numbers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-seg-embedded-'));
  const r = spawnSync(process.execPath, [BIN, 'seg', '--method', 'transformer_attribution', '--out', dir], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
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
