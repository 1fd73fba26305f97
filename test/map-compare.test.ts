import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  compareMapFiles,
  formatComparison,
  mapTolerance,
  type SavedMap,
  writeMapFile,
} from '../scripts/map-compare.js';

function maps(methods: string[], seed: number): Map<string, SavedMap> {
  const out = new Map<string, SavedMap>();
  for (const m of methods) {
    const raw = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i * seed + 1));
    const map = Float32Array.from({ length: 64 }, (_, i) => (i % 7) / 6);
    out.set(m, { raw, rawShape: [4, 4], map, mapShape: [8, 8] });
  }
  return out;
}

test('map files: equal maps pass, a map out of its bound fails, maps in one file only are listed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-map-compare-'));
  const a = join(dir, 'a.safetensors');
  const b = join(dir, 'b.safetensors');
  const logits = new Map([['logits', Float32Array.of(1, 2, 3)]]);
  writeMapFile(a, maps(['rollout', 'lrp'], 3), logits, { backend: 'x' });
  const ref = maps(['rollout', 'lrp', 'gradcam'], 3);
  writeMapFile(b, ref, logits, { backend: 'y' });
  let c = compareMapFiles(a, b);
  assert.equal(c.pass, true, formatComparison(c));
  assert.deepEqual(
    c.rows.map((r) => [r.name, r.rawRel, r.finalAbs]),
    [
      ['rollout', 0, 0],
      ['lrp', 0, 0],
    ],
  );
  assert.deepEqual(c.onlyInReference, ['gradcam']);
  assert.deepEqual(c.logits, { logits: 0 });

  // Just inside and just outside rollout's bound (1e-4 of max|raw|), and lrp's.
  const near = maps(['rollout', 'lrp', 'gradcam'], 3);
  const scale = Math.max(...ref.get('rollout')!.raw.map(Math.abs));
  near.get('rollout')!.raw[5]! += 0.5e-4 * scale;
  writeMapFile(b, near, logits, {});
  c = compareMapFiles(a, b);
  assert.equal(c.pass, true, formatComparison(c));
  near.get('lrp')!.map[0]! += 2 * mapTolerance('lrp').finalAbs;
  writeMapFile(b, near, logits, {});
  c = compareMapFiles(a, b);
  assert.equal(c.pass, false);
  assert.deepEqual(
    c.rows.filter((r) => !r.pass).map((r) => r.name),
    ['lrp'],
  );
  assert.match(formatComparison(c), /1\/2 maps within their bounds: FAIL/);
});

test('map files: a missing file is one error naming it', () => {
  assert.throws(() => compareMapFiles('/nonexistent/a.safetensors', '/nonexistent/b.safetensors'), /nonexistent\/a/);
});
