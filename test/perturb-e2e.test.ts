import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { bench } from './helpers/cli.js';
import { maxAbs, maxAbsDiff, pearson } from './helpers/compare.js';
import { GOLDEN_NAME, goldenArray, goldenPath, readGoldenTensors, readJson } from './helpers/golden.js';
import { type PerturbJson, perturbFiles, visualizeThenPerturb } from './helpers/perturb-run.js';

const DATA = goldenPath('e2e', 'perturb_S1', 'imagenet_val');
const CONFIG = goldenPath('vit', 'S1', 'config.json');
const WEIGHTS = goldenPath('vit', 'S1', 'weights.safetensors');
const MODEL = ['--model-config', CONFIG, '--weights', WEIGHTS];

interface GoldenRun {
  accuracy_per_step: number[];
  correct_counts: number[];
  auc: number;
  stable_order: { correct_counts: number[]; auc: number };
}
interface GoldenVisImage {
  vis_mean: number;
  vis_argmax_flat: number;
}
interface GoldenPerturb {
  images: { label: number; resized_float32_sha256: string }[];
  perturbation: Record<string, GoldenRun>;
  visualizations: Record<string, { per_image: GoldenVisImage[] }>;
}

/**
 * See assertIllConditionedMaps. Measured on wasm, top and target: |mean − float64 mean| ≤ 0.0214 (full LRP,
 * image 9; the official float32 map is 0.0108 off there), Pearson ≥ 0.99287 (full LRP, image 3, target), and
 * at the float64 argmax our maps are exactly at their maximum (0 below it). Bounds: 0.03 (measured + 40 %),
 * 0.99 (1 − r measured 7.1e-3, bound 1e-2) and 1e-3 below the peak (for float32 near-ties on the plateau).
 */
const MEAN_BOUND = 0.03;
const MIN_PEARSON = 0.99;
const PEAK_BOUND = 1e-3;

const sha256 = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

describe('bench visualize + bench perturb against the official scripts (e2e/perturb_S1)', () => {
  const golden = readJson<GoldenPerturb>('e2e', 'perturb_S1', 'results.json');
  const golden64 = readJson<GoldenPerturb>('e2e', 'perturb_S1', 'results_f64.json');

  /**
   * Transformer attribution and full LRP are ill-conditioned in float32 (golden/vit/README.md), so the official
   * float32 maps are themselves off their float64 twins, and on image 4 (top class) badly so: its float32 map
   * peaks elsewhere than its float64 map, for both methods. Every image is checked:
   * - against the official float64 run's statistics of the map (results_f64.json): at its argmax pixel our map is
   *   within PEAK_BOUND of its maximum, and the means are within MEAN_BOUND;
   * - where the official float32 map peaks where its float64 twin does (every image but image 4), by the
   *   Pearson correlation of its 16×16 block means with the official float32 ones, ≥ MIN_PEARSON.
   */
  function assertIllConditionedMaps(
    method: string,
    vis: string,
    maps: Float32Array,
    blockMeans: Float64Array,
    pool: ArrayLike<number>,
  ): void {
    const key = `${GOLDEN_NAME[method]}/${vis}`;
    const f32 = golden.visualizations[key]!.per_image;
    const f64 = golden64.visualizations[key]!.per_image;
    const hw = 224 * 224;
    const worst = { mean: 0, r: 1, peak: 0 };
    for (let i = 0; i < 22; i++) {
      const map = maps.subarray(i * hw, (i + 1) * hw);
      let mean = 0;
      let max = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < hw; k++) {
        mean += map[k]!;
        max = Math.max(max, map[k]!);
      }
      mean /= hw;
      // Where the float64 map peaks, ours is at its peak too (the maximum of an upsampled map is a plateau of
      // near-equal pixels, so the argmax itself can move within it).
      const belowPeak = max - map[f64[i]!.vis_argmax_flat]!;
      assert.ok(belowPeak <= PEAK_BOUND, `${key} image ${i}: ${belowPeak} below the peak at the float64 argmax`);
      worst.peak = Math.max(worst.peak, belowPeak);
      const dMean = Math.abs(mean - f64[i]!.vis_mean);
      assert.ok(dMean <= MEAN_BOUND, `${key} image ${i}: mean ${mean} vs float64 ${f64[i]!.vis_mean}`);
      worst.mean = Math.max(worst.mean, dMean);
      if (f32[i]!.vis_argmax_flat !== f64[i]!.vis_argmax_flat) continue;
      const r = pearson(
        blockMeans.subarray(i * 196, (i + 1) * 196),
        Array.prototype.slice.call(pool, i * 196, (i + 1) * 196),
      );
      assert.ok(r >= MIN_PEARSON, `${key} image ${i}: Pearson ${r} with the official float32 block means`);
      worst.r = Math.min(worst.r, r);
    }
    process.stderr.write(
      `${key}: worst |mean − float64| ${worst.mean.toExponential(2)}, below peak ${worst.peak.toExponential(2)}, Pearson ${worst.r.toFixed(5)}\n`,
    );
  }
  const inter = readGoldenTensors('e2e', 'perturb_S1', 'intermediates.safetensors');
  const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-'));

  const perturbOurs = (visDir: string, name: string) => perturbFiles(dir, visDir, name, MODEL);

  test('perturbation of the official HDF5 files: per-step accuracies and AUCs exactly, both tie rules', () => {
    for (const method of ['rollout', 'transformer_attribution']) {
      const vis = goldenPath('e2e', 'perturb_S1', 'visualizations', method, 'top', 'not_ablation', 'results.hdf5');
      for (const ties of ['torch', 'stable']) {
        const json = join(dir, `official-${method}-${ties}.json`);
        const r = bench([
          'perturb',
          '--vis',
          vis,
          ...MODEL,
          '--ties',
          ties,
          '--out',
          join(dir, `official-${method}-${ties}`),
          '--json',
          json,
          '--quiet',
        ]);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(readFileSync(json, 'utf8')) as PerturbJson;
        const got = out[method]!.top!;
        for (const [setting, short] of [
          ['negative', 'neg'],
          ['positive', 'pos'],
        ] as const) {
          const ref = golden.perturbation[`${method}.top.${short}`]!;
          const counts = ties === 'torch' ? ref.correct_counts : ref.stable_order.correct_counts;
          assert.deepEqual(
            got[setting].accuracy,
            counts.map((c) => c / 22),
            `${method} ${setting} ${ties}`,
          );
          assert.equal(got[setting].auc, ties === 'torch' ? ref.auc : ref.stable_order.auc);
        }
      }
    }
  });

  /**
   * With the float64 forward, the maps rank the pixels as the official float64 run's do. Measured on wasm, both
   * classes: every per-step count of all six methods equals results_f64.json's (for five of them also the float32
   * counts; for full LRP the official float32 run is 2 steps off in the positive test). Full LRP needs its relevance
   * pass in float64 and its map normalised from the float64 values (src/methods/float64-passes.ts): at image 20, step
   * 0.3, its pixels at the cut are 2e-8 apart at 0.833, below float32's ulp there (6e-8), and the map rounded twice
   * (the raw relevance, then the normalised map) moved one of them by an ulp, one image-step off. Exact, no margin.
   */
  test('--forward f64: per-step counts and AUCs of the official float64 run, every method', () => {
    for (const vis of ['top', 'target']) {
      const got = visualizeThenPerturb(dir, `64-${vis}`, MODEL, [
        '--data',
        DATA,
        '--forward',
        'f64',
        '--method',
        'paper',
        '--vis-class',
        vis,
      ]);
      assert.equal(Object.keys(got).length, 6);
      for (const [method, m] of Object.entries(got)) {
        for (const [setting, short] of [
          ['negative', 'neg'],
          ['positive', 'pos'],
        ] as const) {
          const key = `${GOLDEN_NAME[method]}.${vis}.${short}`;
          const counts = m[vis]![setting].accuracy.map((a) => Math.round(a * 22));
          assert.deepEqual(counts, golden64.perturbation[key]!.correct_counts, `${method} ${vis} ${setting}`);
          assert.equal(m[vis]![setting].auc, golden64.perturbation[key]!.auc);
        }
      }
    }
  });

  test('visualize writes the reference HDF5 layout; images exact, maps within tolerance; perturb reproduces the AUCs', async () => {
    for (const vis of ['top', 'target']) {
      const out = join(dir, `vis-${vis}`);
      const r = bench([
        'visualize',
        '--data',
        DATA,
        ...MODEL,
        '--method',
        'paper', // the paper's six, which the golden holds
        '--vis-class',
        vis,
        '--out',
        out,
        '--quiet',
      ]);
      assert.equal(r.code, 0, r.stderr);
      for (const method of ['rollout', 'raw_attention', 'gradcam', 'lrp', 'partial_lrp', 'transformer_attribution']) {
        const reader = await readExplanations(join(out, method, vis, 'results.hdf5'));
        try {
          assert.equal(reader.rows, 22);
          const rows = reader.readRows(0, 22);
          const hw = 224 * 224;
          const pool = goldenArray(inter, `vis.${GOLDEN_NAME[method]}.${vis}.pool16`);
          const mine = new Float64Array(22 * 196);
          for (let i = 0; i < 22; i++) {
            assert.equal(rows.target[i], golden.images[i]!.label);
            assert.equal(
              sha256(rows.image.subarray(i * 3 * hw, (i + 1) * 3 * hw)),
              golden.images[i]!.resized_float32_sha256,
              `image ${i}`,
            );
            for (let y = 0; y < 224; y++)
              for (let x = 0; x < 224; x++)
                mine[i * 196 + (y >> 4) * 14 + (x >> 4)]! += rows.vis[i * hw + y * 224 + x]! / 256;
          }
          // Block means of the final maps against the reference's (float64) block means.
          if (method === 'lrp' || method === 'transformer_attribution') {
            assertIllConditionedMaps(method, vis, rows.vis, mine, pool);
          } else {
            // Measured: max|Δ| ≤ 9.5e-6 (gradcam), 6.7e-5 (partial_lrp); bound 1e-4, the golden README's float32
            // bound for these methods.
            const d = maxAbsDiff(mine, pool);
            assert.ok(d <= 1e-4 * Math.max(1, maxAbs(pool)), `${method}/${vis}: block means max|Δ| ${d}`);
          }
        } finally {
          reader.close();
        }
      }
      // The perturbation test on our own files, both settings: the reference's exact counts for every method
      // whose maps are well conditioned, and for transformer attribution (measured: exact, in float32 and float64).
      // Full LRP ranks pixel by pixel, so float32 rounding reorders its pixels: its counts are held to the float64
      // run of the official scripts (results_f64.json), within 2 image-steps in all (measured: 1 step in each
      // of the four class × setting cases; the official float32 run is 3 steps from float64 in the positive test).
      const got = perturbOurs(out, `pert-${vis}`);
      for (const [method, m] of Object.entries(got)) {
        for (const [setting, short] of [
          ['negative', 'neg'],
          ['positive', 'pos'],
        ] as const) {
          const ref = golden.perturbation[`${GOLDEN_NAME[method]}.${vis}.${short}`]!;
          if (method === 'lrp') {
            const ref64 = golden64.perturbation[`full_lrp.${vis}.${short}`]!.correct_counts;
            const counts = m[vis]![setting].accuracy.map((a) => Math.round(a * 22));
            const steps = counts.reduce((t, c, k) => t + Math.abs(c - ref64[k]!), 0);
            assert.ok(steps <= 2, `lrp ${vis} ${setting}: counts ${counts} vs float64 ${ref64} (${steps} steps)`);
          } else {
            assert.deepEqual(
              m[vis]![setting].accuracy,
              ref.correct_counts.map((c) => c / 22),
              `${method} ${vis} ${setting}`,
            );
            assert.equal(m[vis]![setting].auc, ref.auc);
          }
        }
      }
    }
  });
});
