import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { readVitConfig } from '../src/models/vit-config.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';
import { type FormulaImage, formulaStateDict, mix32 } from './helpers/formula-weights.js';
import {
  GOLDEN_NAME,
  type GoldenCase,
  goldenArray,
  goldenPath,
  readGoldenTensors,
  readJson,
  recipeInput,
  vitGoldenCases,
  vitGoldenConfigs,
} from './helpers/golden.js';

/**
 * The golden geometries G1…G6 (scripts/golden/make-vit-geometries.py): their weights and inputs are formulas that
 * bench rebuilds bit for bit (formula-weights.ts), checked against the SHA-256 the generator recorded; and the maps
 * `npm run precision` reads are in the golden copy, consistent with the official float32-vs-float64 gaps the case
 * json records. These reads are also what keeps them in the repository's copy (golden-sync keeps what tests read).
 */

interface FormulaConfig {
  weights: {
    seed: number;
    formula?: unknown;
    tensors?: Record<string, { index: number; shape: number[]; first8: number[]; sha256_f32le: string }>;
  };
}

const sha256 = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

/**
 * The full-LRP maps (224×224, float32 and float64: about 0.5 MB a class once compressed) the repository's copy keeps
 * of the geometries: one class of one case for the geometry of issue 15 (G2) and for the ViT-B/16 layer shape (G4).
 * A full golden folder (BENCH_GOLDEN) has them all, and `npm run precision` measures all that it finds.
 */
const FULL_LRP_KEPT = ['G2/smooth/top', 'G4/smooth/top'];

test('mix32 is lowbias32', () => {
  // Values of the Python generator's mix32 (make-vit-geometries.py, on uint64 arrays).
  assert.deepEqual([0, 1, 2, 12345, 0xffffffff].map(mix32), [0, 1753845952, 3507691905, 2435775735, 1734902346]);
  assert.equal(mix32(2 ** 32 + 1), mix32(1));
});

const formulaConfigs = vitGoldenConfigs().filter(
  (c) => readJson<FormulaConfig>('vit', c, 'config.json').weights.formula !== undefined,
);

test('the golden geometries with formula weights are there', () => {
  assert.ok(formulaConfigs.length >= 6, `formula configs: ${formulaConfigs.join(', ')}`);
});

for (const name of formulaConfigs) {
  test(`${name}: the TypeScript weight formula gives the generator's float32 bits`, () => {
    const meta = readJson<FormulaConfig>('vit', name, 'config.json');
    const cfg = readVitConfig(goldenPath('vit', name, 'config.json'));
    const sd = formulaStateDict(cfg, meta.weights.seed);
    const checks = meta.weights.tensors!;
    assert.deepEqual([...sd.keys()].sort(), Object.keys(checks).sort());
    let t = 0;
    for (const [key, tensor] of sd) {
      const c = checks[key]!;
      assert.equal(c.index, t++, `${key}: tensor index`);
      assert.deepEqual(tensor.shape, c.shape, `${key}: shape`);
      const data = tensor.data as Float32Array;
      assert.deepEqual([...data.subarray(0, 8)], c.first8, `${key}: first values`);
      assert.equal(sha256(data), c.sha256_f32le, `${key}: SHA-256 of the float32 bytes`);
    }
  });

  test(`${name}: every case's input, rebuilt from its recipe, is the generator's`, () => {
    for (const caseName of vitGoldenCases(name)) {
      const meta = readJson<{ image: FormulaImage }>('vit', name, `case-${caseName}.json`);
      assert.ok(meta.image.input_sha256, `${caseName}: input_sha256`);
      recipeInput(meta); // throws on a SHA-256 mismatch
    }
  });

  test(`${name}: the maps precision reads are there, with the official float32-vs-float64 gaps the json records`, () => {
    for (const caseName of vitGoldenCases(name)) {
      const meta = readJson<GoldenCase>('vit', name, `case-${caseName}.json`);
      const g = readGoldenTensors('vit', name, `case-${caseName}.safetensors`);
      for (const ref of Object.values(GOLDEN_NAME))
        for (const vis of ['top', 'target'] as const) {
          if (ref === 'full_lrp' && !FULL_LRP_KEPT.includes(`${name}/${caseName}/${vis}`)) continue;
          const entry = meta.methods.find((e) => e.method === ref && e.vis_class === vis)!;
          const raw = goldenArray(g, `${ref}.${vis}.raw`);
          const raw64 = goldenArray(g, `${ref}.${vis}.raw_f64`);
          assert.ok(raw instanceof Float32Array && raw64 instanceof Float64Array, `${ref}.${vis}: dtypes`);
          const gap = maxAbsDiff(raw, raw64) / maxAbs(raw64);
          const want = entry.f32_vs_f64.raw_max_abs_diff_over_max_abs;
          assert.ok(Math.abs(gap - want) <= 1e-12 * want, `${caseName} ${ref}.${vis}: gap ${gap} ≠ ${want}`);
        }
      for (const k of ['logits', 'logits.vit_new', 'logits_f64']) assert.ok(goldenArray(g, k).length > 0, k);
    }
  });
}
