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
  // A floor on quality, not an error bound: at most 2 of the 40 documents misclassified. Measured 40/40 (wasm).
  assert.ok(s.accuracy >= 0.95, `classifier accuracy ${s.accuracy}`);
  // --method all: every built-in, the paper's six and generic_attention.
  assert.equal(Object.keys(s.methods).length, 7);
  // Words picked at random score a token-F1 of about 0.05 / 0.08 / 0.11 at k = 5 / 10 / 20 (it rises with k
  // towards the evidence share; embedded/eraser/README.md). The attention-based methods and the paper's
  // method must clearly beat that at small k, where the ranking matters. Measured (wasm) at k = 5 / 10 / 20:
  // rollout 0.356 / 0.343 / 0.313, raw attention 0.342 / 0.356 / 0.316, partial LRP 0.245 / 0.255 / 0.237,
  // LRP 0.250 / 0.240 / 0.214, transformer attribution 0.233 / 0.266 / 0.244, generic attention 0.325 / 0.348 /
  // 0.288 (GradCAM 0.048 / 0.066 / 0.092, not held to it); the floor 0.15 is above random at every k and below the
  // lowest measured, 0.214, by 30 %.
  for (const m of ['rollout', 'raw_attention', 'partial_lrp', 'lrp', 'transformer_attribution', 'generic_attention']) {
    const f = s.methods[m]!.tokenF1;
    assert.ok(f[5]! > 0.15 && f[10]! > 0.15 && f[20]! > 0.15, `${m}: token-F1 at k=5/10/20 ${f[5]} ${f[10]} ${f[20]}`);
  }
});
