import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EraserSummary } from '../src/benchmarks/eraser.js';
import { bench } from './helpers/cli.js';

// No data or model paths: the embedded synthetic movie reviews and the embedded BERT.
test('bench eraser --split test runs on the embedded default with meaningful token-F1', () => {
  const out = mkdtempSync(join(tmpdir(), 'bench-eraser-embedded-'));
  const r = bench(['eraser', '--split', 'test', '--out', out, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /data: embedded synthetic movie reviews/);
  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as EraserSummary;
  assert.equal(s.documents, 40);
  assert.ok(s.accuracy >= 0.9, `classifier accuracy ${s.accuracy}`);
  assert.equal(Object.keys(s.methods).length, 6);
  // About 9% of the tokens are evidence, so picking words at random scores a token-F1 of at most ~0.09;
  // every method's best token-F1 over k must be well above that.
  for (const [m, r2] of Object.entries(s.methods)) {
    const best = Math.max(...Object.values(r2.tokenF1));
    assert.ok(best > 0.15, `${m}: best token-F1 ${best}`);
  }
});
