import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { SegSummary } from '../src/benchmarks/segmentation.js';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { encodeSafetensors } from '../src/formats/safetensors.js';
import { readVitConfig } from '../src/models/vit-config.js';
import { bench } from './helpers/cli.js';
import { formulaStateDict } from './helpers/formula-weights.js';
import { GOLDEN_NAME, goldenPath, readJson } from './helpers/golden.js';
import { type PerturbJson, visualizeThenPerturb } from './helpers/perturb-run.js';

/**
 * End to end on a held-out geometry: G2 of scripts/golden/make-vit-geometries.py (depth 4, 4 heads, D = 64,
 * qkv_bias, 7 classes), whose numbers no other test tunes against. The official scripts ran on the inputs of
 * e2e/seg_S1 and e2e/perturb_S1 with G2 in place of ViT-B, in float32 (results.json) and float64
 * (results_f64.json); scripts/golden/make-e2e-geometry.py made them, e2e/seg_G2/README.md and
 * e2e/perturb_G2/README.md say how.
 */
const CONFIG = goldenPath('vit', 'G2', 'config.json');
const MAT = goldenPath('e2e', 'seg_S1', 'gtsegs_ijcv_e2e_S1.mat');
/** The perturbation run's folder is perturb_S1's first 7 wnids (labels 0…6): its first 16 images in folder order. */
const DATA = goldenPath('e2e', 'perturb_S1', 'imagenet_val');
const N_PERTURB = 16;

const WELL_CONDITIONED = ['rollout', 'raw_attention', 'gradcam', 'partial_lrp'];
const ILL_CONDITIONED = ['transformer_attribution', 'lrp'];

interface SegRef {
  pixAcc: number;
  mIoU: number;
  mAP: number;
}
interface PerturbRef {
  perturbation: Record<string, { correct_counts: number[]; auc: number; n_images: number }>;
  visualizations: Record<string, { target: number[] }>;
}

describe('bench seg, visualize and perturb on the held-out geometry G2 against the official scripts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-e2e-g2-'));
  // The golden store keeps G2's config only; its weights are the formula's (make-vit-geometries.py), written here.
  const cfgJson = JSON.parse(readFileSync(CONFIG, 'utf8')) as { weights: { seed: number } };
  const WEIGHTS = join(dir, 'G2.safetensors');
  writeFileSync(WEIGHTS, encodeSafetensors(formulaStateDict(readVitConfig(CONFIG), cfgJson.weights.seed)));
  const MODEL = ['--model-config', CONFIG, '--weights', WEIGHTS];

  const seg32 = readJson<{ results: Record<string, SegRef> }>('e2e', 'seg_G2', 'results.json').results;
  const seg64 = readJson<{ results: Record<string, SegRef> }>('e2e', 'seg_G2', 'results_f64.json').results;
  const pert32Json = readJson<PerturbRef>('e2e', 'perturb_G2', 'results.json');
  const pert32 = pert32Json.perturbation;
  const pert64 = readJson<PerturbRef>('e2e', 'perturb_G2', 'results_f64.json').perturbation;

  const seg = (name: string, args: string[]): SegSummary => {
    const json = join(dir, `${name}.json`);
    const r = bench(['seg', '--data', MAT, ...MODEL, ...args, '--out', join(dir, name), '--json', json, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(readFileSync(json, 'utf8')) as SegSummary;
  };
  const ours = (m: SegSummary['methods'][string]) =>
    ({ pixAcc: m.pixelAccuracy, mIoU: m.mIoU, mAP: m.mAP }) as Record<keyof SegRef, number>;
  const KEYS = ['pixAcc', 'mIoU', 'mAP'] as const;

  const perturb = (name: string, forward: string): PerturbJson =>
    visualizeThenPerturb(dir, name, MODEL, [
      '--data',
      DATA,
      '--limit',
      String(N_PERTURB),
      '--forward',
      forward,
      '--method',
      'paper',
      '--vis-class',
      'top',
    ]);
  const counts = (got: PerturbJson, method: string, setting: 'negative' | 'positive') =>
    got[method]!.top![setting].accuracy.map((a) => Math.round(a * N_PERTURB));

  /**
   * Float32 forward, against the official float32 run (results.json), measured on wasm (points):
   * - rollout, raw attention, GradCAM: pixel accuracy and mIoU exact; mAP within 4.3e-5 (raw attention). Bound:
   *   1.5e-4, seg-e2e.test.ts's bound for S1 (the worst measured here × 3.5).
   * - partial LRP: one pixel of image 0…5 sits at its threshold: ours is on the official float64 run's side, the
   *   official float32 run on the other (pixel accuracy 3.3e-4 = 1/301056, mIoU 2.2e-4, mAP 1.9e-4 away; ours equals
   *   float64's pixel accuracy and mIoU). Bound: 7e-4, two pixels' worth (measured: one).
   */
  const segTolerance = (method: string) => (method === 'partial_lrp' ? 7e-4 : 1.5e-4);

  test('seg, float32 forward: the well-conditioned methods give the official float32 numbers', () => {
    const s = seg('seg32', ['--method', 'paper']);
    assert.equal(s.images, 6);
    for (const name of WELL_CONDITIONED) {
      const ref = seg32[GOLDEN_NAME[name]!]!;
      for (const k of KEYS) {
        const d = Math.abs(ours(s.methods[name]!)[k] - 100 * ref[k]);
        assert.ok(d <= segTolerance(name), `${name} ${k}: ${d} points from the official float32 run`);
      }
    }
  });

  /**
   * Float64 forward, against the official float64 run (results_f64.json): issue 15's bar, each number at least as
   * close to float64 as the official float32 number is, or within 0.05 points. Measured on wasm (points from
   * float64; the official float32 run's distance in brackets): transformer attribution 0 / 0 / 1.2e-4 (2.0e-3 /
   * 1.7e-3 / 6.2e-4), full LRP 0 / 0 / 1.3e-4 (0.049 / 0.20 / 0.056; with the relevance pass in float32 it was
   * 3.3e-4 / 2.3e-4 / 1.3e-4). Also held within 1e-3 of float64 (the largest measured, 1.3e-4, × 7). With the float32 forward our full LRP is 2.4 / 1.2 / 7.0 points from both
   * official runs on this model (which are 0.05 / 0.20 / 0.06 apart): it is not checked there.
   */
  test('seg, --forward f64: transformer attribution and full LRP as close to the official float64 run as issue 15 asks', () => {
    const s = seg('seg64', ['--forward', 'f64', '--method', 'lrp', '--method', 'transformer_attribution']);
    for (const name of ILL_CONDITIONED) {
      const f32 = seg32[GOLDEN_NAME[name]!]!;
      const f64 = seg64[GOLDEN_NAME[name]!]!;
      for (const k of KEYS) {
        const d = Math.abs(ours(s.methods[name]!)[k] - 100 * f64[k]);
        const official = Math.abs(100 * f32[k] - 100 * f64[k]);
        assert.ok(d <= official || d <= 0.05, `${name} ${k}: ${d} from float64, the official float32 ${official}`);
        assert.ok(d <= 1e-3, `${name} ${k}: ${d} points from float64 (measured ≤ 1.3e-4)`);
      }
    }
  });

  /**
   * visualize + perturb, float32 forward: the four well-conditioned methods' per-step counts (and so their AUCs) are
   * the official float32 run's exactly, both settings (measured: exact). GradCAM's map of image 8 is constant: the
   * reference writes NaN, bench zeros; the counts agree all the same (measured). Transformer attribution (negative
   * exact, positive 2 image-steps off) and full LRP (negative exact, positive 3 off) are not checked here.
   */
  test('visualize + perturb, float32 forward: the official per-step counts of the well-conditioned methods', async () => {
    const got = perturb('f32', 'f32');
    assert.equal(Object.keys(got).length, 6);
    // The same 16 images with the same labels as the official run's folder (its first 7 wnids).
    const reader = await readExplanations(join(dir, 'vis-f32', 'rollout', 'top', 'results.hdf5'));
    try {
      assert.deepEqual(
        Array.from(reader.readRows(0, reader.rows).target),
        pert32Json.visualizations['rollout/top']!.target,
      );
    } finally {
      reader.close();
    }
    for (const name of WELL_CONDITIONED) {
      for (const [setting, short] of [
        ['negative', 'neg'],
        ['positive', 'pos'],
      ] as const) {
        const ref = pert32[`${GOLDEN_NAME[name]}.top.${short}`]!;
        assert.equal(ref.n_images, N_PERTURB);
        assert.deepEqual(counts(got, name, setting), ref.correct_counts, `${name} ${setting}`);
        assert.equal(got[name]!.top![setting].auc, ref.auc, `${name} ${setting} AUC`);
      }
    }
  });

  /**
   * visualize --forward f64 (the classifier of perturb stays float32, as in perturb-e2e.test.ts): every method's
   * per-step counts are the official float64 run's exactly, both settings (measured: exact for all six; the
   * official float32 run is 1 + 2 image-steps from float64 for transformer attribution and 2 + 1 for full LRP).
   */
  test('visualize --forward f64 + perturb: the official float64 per-step counts, every method', () => {
    const got = perturb('f64', 'f64');
    for (const name of [...WELL_CONDITIONED, ...ILL_CONDITIONED]) {
      for (const [setting, short] of [
        ['negative', 'neg'],
        ['positive', 'pos'],
      ] as const) {
        const ref = pert64[`${GOLDEN_NAME[name]}.top.${short}`]!;
        assert.deepEqual(counts(got, name, setting), ref.correct_counts, `${name} ${setting}`);
        assert.equal(got[name]!.top![setting].auc, ref.auc, `${name} ${setting} AUC`);
      }
    }
  });
});
