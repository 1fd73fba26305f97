import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { bench } from './helpers/cli.js';
import {
  GOLDEN_NAME,
  goldenArray,
  goldenPath,
  maxAbs,
  pearson,
  readGoldenTensors,
  readJson,
} from './helpers/golden.js';

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
interface GoldenPerturb {
  images: { label: number; resized_float32_sha256: string }[];
  perturbation: Record<string, GoldenRun>;
}
type PerturbJson = Record<string, Record<string, Record<'negative' | 'positive', { accuracy: number[]; auc: number }>>>;

const sha256 = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

describe('bench visualize + bench perturb against the official scripts (e2e/perturb_S1)', () => {
  const golden = readJson<GoldenPerturb>('e2e', 'perturb_S1', 'results.json');
  const inter = readGoldenTensors('e2e', 'perturb_S1', 'intermediates.safetensors');
  const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-'));

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

  test('visualize writes the reference HDF5 layout; images exact, maps within tolerance; perturb reproduces the AUCs', async () => {
    for (const vis of ['top', 'target']) {
      const out = join(dir, `vis-${vis}`);
      const r = bench([
        'visualize',
        '--data',
        DATA,
        ...MODEL,
        '--method',
        'all',
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
            // Ill-conditioned in float32 (golden/vit/README.md), so held to correlation, on 90 % of the images.
            // The exception is image 4: there the reference's own float32 run is unstable. Run in float64, the
            // official code gives our map (transformer attribution: max 7.07e-4, like ours, against 2.37e-4 in the
            // stored float32 run; block 1's attn_cam moves by 80 % between its float32 and float64 runs).
            const r = Array.from({ length: 22 }, (_, i) =>
              pearson(mine.subarray(i * 196, (i + 1) * 196), pool.subarray(i * 196, (i + 1) * 196)),
            );
            assert.ok(
              r.filter((x) => x >= 0.99).length >= 0.9 * 22,
              `${method}/${vis}: Pearson per image ${r.map((x) => x.toFixed(3))}`,
            );
          } else {
            let d = 0;
            for (let j = 0; j < mine.length; j++) d = Math.max(d, Math.abs(mine[j]! - pool[j]!));
            assert.ok(d <= 1e-4 * Math.max(1, maxAbs(pool)), `${method}/${vis}: block means max|Δ| ${d}`);
          }
        } finally {
          reader.close();
        }
      }
      // The perturbation test on our own files, both settings: the reference's exact counts for every method
      // whose maps are well conditioned. The LRP-type maps differ from the reference's in float32 rounding, which
      // reorders pixels: transformer attribution is held to one image-step (100·0.1/22 ≈ 0.45 points; measured:
      // exact), full LRP, whose ranking is per pixel, to four (measured: 1 and 3 steps, top class).
      const json = join(dir, `ours-${vis}.json`);
      const p = bench([
        'perturb',
        '--vis-dir',
        out,
        ...MODEL,
        '--out',
        join(dir, `pert-${vis}`),
        '--json',
        json,
        '--quiet',
      ]);
      assert.equal(p.code, 0, p.stderr);
      const got = JSON.parse(readFileSync(json, 'utf8')) as PerturbJson;
      for (const [method, m] of Object.entries(got)) {
        for (const [setting, short] of [
          ['negative', 'neg'],
          ['positive', 'pos'],
        ] as const) {
          const ref = golden.perturbation[`${GOLDEN_NAME[method]}.${vis}.${short}`]!;
          if (method === 'lrp' || method === 'transformer_attribution') {
            const steps = method === 'lrp' ? 4 : 1;
            assert.ok(
              Math.abs(m[vis]![setting].auc - ref.auc) <= (steps * 100 * 0.1) / 22 + 1e-9,
              `${method} ${vis} ${setting}: AUC ${m[vis]![setting].auc} vs ${ref.auc}`,
            );
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
