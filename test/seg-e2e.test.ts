import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runSegmentation, type SegSummary } from '../src/benchmarks/segmentation.js';
import { resolveMethods } from '../src/methods/registry.js';
import { bench } from './helpers/cli.js';
import { GOLDEN_NAME, goldenPath, loadGoldenVit, readJson } from './helpers/golden.js';

const MAT = goldenPath('e2e', 'seg_S1', 'gtsegs_ijcv_e2e_S1.mat');
const CONFIG = goldenPath('vit', 'S1', 'config.json');
const WEIGHTS = goldenPath('vit', 'S1', 'weights.safetensors');

interface GoldenSegResults {
  results: Record<string, { pixAcc: number; mIoU: number; mAP: number } | { error: string }>;
}

describe('bench seg end to end against the official script (e2e/seg_S1)', () => {
  const golden = readJson<GoldenSegResults>('e2e', 'seg_S1', 'results.json');
  const dir = mkdtempSync(join(tmpdir(), 'bench-seg-'));

  /**
   * 0.05 points for every method but full LRP. Full LRP propagates relevance through every LRP-0 residual
   * and product, which is ill-conditioned in float32 (golden/vit/README.md), and its pixel maps crowd around
   * their mean threshold, so the foreground decision of hundreds of pixels per image depends on float32
   * rounding: the reference's own float32 and float64 runs already disagree on 244–498 pixels per S1 image.
   * Running the official code on these 6 images gives pixel accuracy 58.42 in float32 (58.34 in the golden
   * run, on another machine) and 57.29 in float64, i.e. the number itself is only defined to about a point.
   * Measured here: −0.23 pixel accuracy, −0.21 mIoU, +0.02 mAP. Held to 0.5 points.
   */
  const tolerance = (method: string) => (method === 'lrp' ? 0.5 : 0.05);

  test('every method in one pass: pixel accuracy, mIoU and mAP within 0.05 points of the reference', () => {
    const json = join(dir, 'all.json');
    const r = bench([
      'seg',
      '--data',
      MAT,
      '--model-config',
      CONFIG,
      '--weights',
      WEIGHTS,
      '--method',
      'all',
      '--out',
      join(dir, 'all'),
      '--json',
      json,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(readFileSync(json, 'utf8')) as SegSummary;
    assert.equal(s.images, 6);
    assert.equal(Object.keys(s.methods).length, 6);
    for (const [name, m] of Object.entries(s.methods)) {
      const ref = golden.results[GOLDEN_NAME[name]!] as { pixAcc: number; mIoU: number; mAP: number };
      const tol = tolerance(name);
      assert.ok(
        Math.abs(m.pixelAccuracy - 100 * ref.pixAcc) <= tol,
        `${name} pixel accuracy ${m.pixelAccuracy} vs ${100 * ref.pixAcc}`,
      );
      assert.ok(Math.abs(m.mIoU - 100 * ref.mIoU) <= tol, `${name} mIoU ${m.mIoU} vs ${100 * ref.mIoU}`);
      assert.ok(Math.abs(m.mAP - 100 * ref.mAP) <= tol, `${name} mAP ${m.mAP} vs ${100 * ref.mAP}`);
    }
    for (const f of ['summary.json', 'summary.md', 'per_image.csv']) readFileSync(join(dir, 'all', f));
    const csv = readFileSync(join(dir, 'all', 'per_image.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv.length, 1 + 6 * 6);
  });

  test('one method alone gives the same numbers as in the shared pass', () => {
    const json = join(dir, 'one.json');
    const r = bench([
      'seg',
      '--data',
      MAT,
      '--model-config',
      CONFIG,
      '--weights',
      WEIGHTS,
      '--method',
      'lrp_last_layer',
      '--out',
      join(dir, 'one'),
      '--json',
      json,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const one = JSON.parse(readFileSync(json, 'utf8')) as SegSummary;
    const all = JSON.parse(readFileSync(join(dir, 'all.json'), 'utf8')) as SegSummary;
    const strip = ({ seconds: _s, ...rest }: SegSummary['methods'][string]) => rest;
    assert.deepEqual(strip(one.methods.partial_lrp!), strip(all.methods.partial_lrp!));
  });

  test('interrupted and resumed: identical numbers and per-image rows', async () => {
    const model = await loadGoldenVit('S1');
    const methods = resolveMethods(['all']);
    const base = {
      model,
      dataFile: MAT,
      methods,
      startLayer: 1,
      identity: { command: 'seg', test: 1 },
      quiet: true,
      log: () => {},
    };
    const full = await runSegmentation({ ...base, outDir: join(dir, 'full') });
    const out = join(dir, 'interrupted');
    await assert.rejects(
      runSegmentation({
        ...base,
        outDir: out,
        onImageDone: (i) => {
          if (i === 2) throw new Error('simulated interruption');
        },
      }),
      /simulated interruption/,
    );
    await assert.rejects(runSegmentation({ ...base, outDir: out }), /pass --resume/);
    const resumed = await runSegmentation({ ...base, outDir: out, resume: true });
    for (const [name, m] of Object.entries(full.methods)) {
      const { seconds: _a, ...x } = m;
      const { seconds: _b, ...y } = resumed.methods[name]!;
      assert.deepEqual(y, x, name);
    }
    assert.equal(
      readFileSync(join(out, 'per_image.csv'), 'utf8'),
      readFileSync(join(dir, 'full', 'per_image.csv'), 'utf8'),
    );
    await assert.rejects(
      runSegmentation({ ...base, identity: { command: 'seg', test: 2 }, outDir: out, resume: true }),
      /describes a different run/,
    );
  });
});

test('bench seg: bad data files give one clear line naming the file, no stack trace', async () => {
  const { copyFileSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'bench-seg-bad-'));
  const truncated = join(dir, 'truncated.mat');
  const full = readFileSync(MAT);
  writeFileSync(truncated, full.subarray(0, Math.floor(full.length * 0.3)));
  const notMat = join(dir, 'notes.mat');
  copyFileSync(CONFIG, notMat);
  const cases: [string, RegExp][] = [
    [join(dir, 'missing.mat'), /missing\.mat: /],
    [truncated, /truncated\.mat: .*truncated/i],
    [notMat, /notes\.mat: /],
  ];
  for (const [file, pattern] of cases) {
    const r = bench([
      'seg',
      '--data',
      file,
      '--model-config',
      CONFIG,
      '--weights',
      WEIGHTS,
      '--out',
      join(dir, 'out'),
      '--quiet',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bench: error: /);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at |HDF5-DIAG/);
  }
});
