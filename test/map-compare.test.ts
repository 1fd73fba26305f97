import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  compareMapFiles,
  formatComparison,
  mapTolerance,
  NOISE_K,
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

test('map files: with a noise file, each bound is k × how far the one-ulp input moves that map', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-map-compare-'));
  const [mine, ref, noise] = ['mine', 'ref', 'noise'].map((n) => join(dir, `${n}.safetensors`)) as [
    string,
    string,
    string,
  ];
  const logits = new Map([['logits', Float32Array.of(1, 2, 3)]]);
  const base = maps(['rollout', 'lrp'], 3);
  writeMapFile(ref, base, logits, {});
  const scale = Math.max(...base.get('lrp')!.raw.map(Math.abs));
  // The noise run moves lrp's raw map by 0.1 of max and its final map by 0.02; rollout not at all.
  const noisy = maps(['rollout', 'lrp'], 3);
  noisy.get('lrp')!.raw[2]! += 0.1 * scale;
  noisy.get('lrp')!.map[3]! += 0.02;
  writeMapFile(noise, noisy, logits, {});
  // Mine differs by 0.3 of max (raw) and 0.06 (final) in lrp: out of the plain bound, within 3.5 × the noise.
  const m = maps(['rollout', 'lrp'], 3);
  m.get('lrp')!.raw[7]! += 0.3 * scale;
  m.get('lrp')!.map[9]! += 0.06;
  writeMapFile(mine, m, logits, {});
  assert.equal(compareMapFiles(mine, ref).pass, false);
  const c = compareMapFiles(mine, ref, noise);
  assert.equal(c.pass, true, formatComparison(c));
  const lrp = c.rows.find((r) => r.method === 'lrp')!;
  assert.ok(Math.abs(lrp.bound.rawRel - NOISE_K * 0.1) < 1e-6, String(lrp.bound.rawRel));
  assert.ok(Math.abs(lrp.bound.finalAbs - NOISE_K * 0.02) < 1e-6, String(lrp.bound.finalAbs));
  // A map the noise does not move keeps the golden floor.
  assert.equal(c.rows.find((r) => r.method === 'rollout')!.bound.rawRel, 1e-4);
  assert.match(formatComparison(c), /noise Pearson/);
});

test('map files: a missing file is one error naming it', () => {
  assert.throws(() => compareMapFiles('/nonexistent/a.safetensors', '/nonexistent/b.safetensors'), /nonexistent\/a/);
});
