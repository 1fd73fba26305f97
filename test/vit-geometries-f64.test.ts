import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { explain } from '../src/methods/explain.js';
import { PAPER_METHODS } from '../src/methods/registry.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';
import type { FormulaImage } from './helpers/formula-weights.js';
import {
  caseInput,
  GOLDEN_NAME,
  type GoldenCase,
  goldenArray,
  loadGoldenVit,
  readGoldenTensors,
  readJson,
  vitGoldenCases,
  vitGoldenConfigs,
} from './helpers/golden.js';

/**
 * The held-out geometries G1…G6 (scripts/golden/make-vit-geometries.py: depth 2–8, 1–12 heads, width 32–768, with
 * and without qkv bias, 3 to 1,000 classes) under the float64 forward on wasm, judged by float64 (issue 15): each
 * raw map at least as close to the official float64 map as the official float32 map is. The float32 suite
 * (vit-golden-suite.ts) cannot hold them: there the official float32 maps are up to 0.36 of max from float64.
 *
 * Every map this golden copy holds is checked; the repository's copy keeps two of the geometries' 24 full-LRP map
 * pairs (the others are 2 × 600 KB each), and `npm run precision` with BENCH_GOLDEN=<the generator's folder> measures
 * all of them (results/precision/).
 */
process.env.BENCH_FORWARD = 'f64';

/**
 * The ratio d_bench / d_official, measured on wasm over the maps of this copy (every pass in float64): transformer
 * attribution ≤ 0.037, partial LRP ≤ 0.052, rollout ≤ 0.10, raw attention ≤ 0.077, full LRP ≤ 1.2e-7; GradCAM reaches
 * 1 on G6 smooth (top), where both maps equal the float64 one (0/0 counts as 1). The bound is the issue's, 1, without
 * margin: above it bench is the worse reference, which is what this checks for.
 */
const MAX_RATIO = 1;
/**
 * And bench's own distance to float64, max|map − map₆₄| / max|map₆₄|: measured ≤ 2.3e-6 (GradCAM, G5 smooth, target:
 * its head mean and normalisation run in float32), the others ≤ 1.5e-7 (partial LRP; transformer attribution 1.1e-7,
 * full LRP 3.9e-8, a float32 rounding); bound 5e-6. The official float32 maps are up to 3.6e-1 away.
 */
const MAX_DISTANCE = 5e-6;

const configs = vitGoldenConfigs().filter((c) => c !== 'S1');

test('the geometries are all there', () => {
  assert.deepEqual(configs, ['G1', 'G2', 'G3', 'G4', 'G5', 'G6']);
});

for (const config of configs) {
  describe(`ViT golden ${config}, --forward f64 (wasm)`, async () => {
    const model = await loadGoldenVit(config, 'wasm');
    for (const caseName of vitGoldenCases(config)) {
      const meta = readJson<GoldenCase & { image?: FormulaImage }>('vit', config, `case-${caseName}.json`);
      const g = readGoldenTensors('vit', config, `case-${caseName}.safetensors`);
      for (const vis of ['top', 'target'] as const) {
        test(`${caseName} / ${vis}: every map at least as close to float64 as the official float32`, async () => {
          const input = caseInput(g, meta);
          const ex = await explain(model, input, PAPER_METHODS, {
            classes: vis === 'top' ? 'top' : meta.target_class,
            startLayer: 1,
          });
          input.dispose();
          // The LRP model files' logits (the float64 forward's, rounded once) against the official float64 run:
          // measured ≤ 5.3e-8 × max(1, max|logit|), a float32 rounding; bound 2e-7.
          const logits64 = goldenArray(g, 'logits_f64');
          const dLogits = maxAbsDiff(ex.lrpLogits[0]!, logits64);
          assert.ok(dLogits <= 2e-7 * Math.max(1, maxAbs(logits64)), `logits: max|Δ| ${dLogits}`);
          let checked = 0;
          for (const m of ex.methods) {
            const ref = GOLDEN_NAME[m.method]!;
            const entry = meta.methods.find((e) => e.method === ref && e.vis_class === vis);
            assert.ok(entry, `golden entry for ${ref}/${vis}`);
            if (m.classes) assert.equal(m.classes[0], entry.class_used, `${m.method}: explained class`);
            if (!g.has(`${ref}.${vis}.raw_f64`)) continue;
            const raw64 = goldenArray(g, `${ref}.${vis}.raw_f64`);
            const scale = maxAbs(raw64);
            const ours = maxAbsDiff(m.raw[0]!, raw64) / scale;
            const official = maxAbsDiff(goldenArray(g, `${ref}.${vis}.raw`), raw64) / scale;
            // Where the official float32 map equals the float64 one, ours must too (0/0 counts as 1).
            const ratio = official > 0 ? ours / official : ours > 0 ? Number.POSITIVE_INFINITY : 1;
            assert.ok(ratio <= MAX_RATIO, `${m.method}/${vis}: ${ours} from float64, the official float32 ${official}`);
            assert.ok(ours <= MAX_DISTANCE, `${m.method}/${vis}: ${ours} of max from float64`);
            checked++;
          }
          // Rollout, raw attention, GradCAM, partial LRP and transformer attribution always; full LRP where kept.
          assert.ok(checked >= 5, `${checked} maps checked`);
        });
      }
    }
  });
}
