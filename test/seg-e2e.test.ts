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

interface GoldenSegImage {
  fg_pred_pixels: number;
  pixel_correct: number;
  pixel_labeled: number;
  area_inter_bg_fg: [number, number];
  area_union_bg_fg: [number, number];
  ap: number;
  threshold_mean: number;
}

/**
 * per_image.csv row by row. Its counts add up to the summary's dataset-level numbers, for every method. Against
 * the official run's per-image record (results.json → per_image), measured on wasm:
 * - rollout, raw_attention, gradcam, partial_lrp: every count equal; AP within 3.0e-6, threshold within 3.5e-6.
 *   Bounds: counts exact, 1e-5 for AP and threshold (measured × 2.8).
 * - transformer_attribution: counts within 2 pixels, AP within 5.4e-6, threshold within 9.7e-6; on webgpu (lavapipe,
 *   golden-webgpu.test.ts) counts within 2 pixels, AP within 9.5e-6, threshold within 2.4e-5. Bounds, on every
 *   backend: 3 pixels (measured + 1), 5e-5 for AP and threshold (the worst measured × 2.1).
 * - full LRP: its pixel maps crowd around their mean threshold and move by thousands of pixels per image with
 *   float32 rounding (the official float32 run is up to 2,236 foreground pixels from its float64 run): only
 *   the consistency of its rows is checked here, and its dataset-level numbers above.
 */
function assertPerImageRows(csvText: string, s: SegSummary): void {
  const golden = readJson<{ per_image: Record<string, GoldenSegImage[]> }>('e2e', 'seg_S1', 'results.json').per_image;
  const [header, ...lines] = csvText.trim().split('\n');
  const cols = header!.split(',');
  assert.deepEqual(cols, [
    'index',
    'id',
    'method',
    'class',
    'threshold',
    'fg_pixels',
    'correct',
    'labeled',
    'inter_bg',
    'inter_fg',
    'union_bg',
    'union_fg',
    'ap',
    'row_f1_mean',
    'constant_map',
  ]);
  assert.equal(lines.length, 6 * 6);
  const sums = new Map<string, { correct: number; labeled: number; inter: number[]; union: number[]; ap: number }>();
  for (const line of lines) {
    const cell = Object.fromEntries(line.split(',').map((v, j) => [cols[j]!, v]));
    const n = (k: string) => Number(cell[k]);
    const method = cell.method!;
    const t = sums.get(method) ?? { correct: 0, labeled: 0, inter: [0, 0], union: [0, 0], ap: 0 };
    t.correct += n('correct');
    t.labeled += n('labeled');
    t.inter = [t.inter[0]! + n('inter_bg'), t.inter[1]! + n('inter_fg')];
    t.union = [t.union[0]! + n('union_bg'), t.union[1]! + n('union_fg')];
    t.ap += n('ap') / 6;
    sums.set(method, t);
    assert.equal(n('labeled'), 224 * 224);
    assert.ok(n('inter_bg') <= n('union_bg') && n('inter_fg') <= n('union_fg'), line);
    assert.equal(n('correct'), n('inter_bg') + n('inter_fg'), line);
    if (method === 'lrp') continue;
    const ref = golden[GOLDEN_NAME[method]!]![n('index')]!;
    const ours = ['fg_pixels', 'correct', 'inter_bg', 'inter_fg', 'union_bg', 'union_fg'].map(n);
    const want = [ref.fg_pred_pixels, ref.pixel_correct, ...ref.area_inter_bg_fg, ...ref.area_union_bg_fg];
    const ta = method === 'transformer_attribution';
    ours.forEach((v, j) => {
      assert.ok(Math.abs(v - want[j]!) <= (ta ? 3 : 0), `${method} image ${n('index')}: counts ${ours} vs ${want}`);
    });
    const bound = ta ? 5e-5 : 1e-5;
    assert.ok(Math.abs(n('ap') - ref.ap) <= bound, `${method} image ${n('index')}: AP ${n('ap')} vs ${ref.ap}`);
    assert.ok(Math.abs(n('threshold') - ref.threshold_mean) <= bound, `${method} image ${n('index')}: threshold`);
  }
  for (const [method, t] of sums) {
    const m = s.methods[method]!;
    assert.ok(Math.abs(m.pixelAccuracy - (100 * t.correct) / t.labeled) <= 1e-9, `${method}: pixel accuracy from rows`);
    const iou = t.inter.map((x, c) => x / t.union[c]!);
    assert.ok(Math.abs(m.mIoU - (100 * (iou[0]! + iou[1]!)) / 2) <= 1e-9, `${method}: mIoU from rows`);
    assert.ok(Math.abs(m.mAP - 100 * t.ap) <= 1e-9, `${method}: mAP from rows`);
  }
}

describe('bench seg end to end against the official script (e2e/seg_S1)', () => {
  const golden = readJson<GoldenSegResults>('e2e', 'seg_S1', 'results.json');
  const dir = mkdtempSync(join(tmpdir(), 'bench-seg-'));

  /**
   * The four well-conditioned methods: pixel accuracy and mIoU exact, mAP within 3.8e-5 on wasm and 4.9e-5 on
   * webgpu. Bound: 1.5e-4 points, the worst measured × 3. Transformer attribution: within 1.6e-4 (mIoU) on wasm, 5.5e-4 (mIoU; pixel accuracy 3.3e-4, mAP
   * 1.7e-4) on webgpu (lavapipe, golden-webgpu.test.ts). Bound: 1e-3, the worst measured × 1.8.
   * Full LRP propagates relevance through every LRP-0 residual and product, which is ill-conditioned in float32
   * (golden/vit/README.md), and its pixel maps crowd around their mean threshold, so the foreground decision of
   * hundreds of pixels per image depends on float32 rounding: the reference's own float32 and float64 runs
   * disagree by 1.25 points of pixel accuracy on these 6 images (58.34 against 57.09). Measured against the
   * official float32 run: −0.168 pixel accuracy, −0.175 mIoU, +0.060 mAP on wasm; −0.474, −0.381, +0.078 on webgpu.
   * Bound: 0.6 points (the worst measured + 27 %), half the reference's own float32-to-float64 gap.
   */
  const tolerance = (method: string) => (method === 'lrp' ? 0.6 : method === 'transformer_attribution' ? 1e-3 : 1.5e-4);

  /** `bench seg` on the golden data with `args` into <dir>/<name>; its --json summary (<dir>/<name>.json) and stderr. */
  const segOnGolden = (name: string, args: string[]) => {
    const json = join(dir, `${name}.json`);
    const r = bench([
      'seg',
      '--data',
      MAT,
      '--model-config',
      CONFIG,
      '--weights',
      WEIGHTS,
      ...args,
      '--out',
      join(dir, name),
      '--json',
      json,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return { s: JSON.parse(readFileSync(json, 'utf8')) as SegSummary, stderr: r.stderr };
  };

  test("every method in one pass: pixel accuracy, mIoU and mAP as the reference's, and the files behind them", () => {
    // The paper's six, which the golden holds.
    const { s } = segOnGolden('all', ['--method', 'paper']);
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
    // summary.json is what --json wrote; summary.md shows the same numbers.
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'all', 'summary.json'), 'utf8')), s);
    const md = readFileSync(join(dir, 'all', 'summary.md'), 'utf8');
    for (const [name, m] of Object.entries(s.methods)) {
      const cells = [m.pixelAccuracy, m.mIoU, m.mAP].map((v) => v.toFixed(2)).join(' | ');
      assert.ok(md.includes(`| ${name} | ${cells} |`), `summary.md row of ${name}: ${cells}`);
    }
    assertPerImageRows(readFileSync(join(dir, 'all', 'per_image.csv'), 'utf8'), s);
  });

  /**
   * With the float64 forward (--forward f64), the two ill-conditioned methods are judged by the official float64 run
   * (results_f64.json): each number at least as close to it as the official float32 number is, or within 0.05 points
   * (issue 15's bar). Measured on wasm (results/precision/2026-12-03-passes-f64.md): full LRP 0 / 0 / 1.8e-4 points
   * from float64 (pixel accuracy, mIoU, mAP) where the official float32 run is 1.24 / 0.82 / 0.38 away; transformer
   * attribution 0 / 0 / 4.4e-4. So each number is also held within 1e-3 points of float64 (the largest measured,
   * 4.4e-4, plus a 127 % margin), which catches a drift long before the issue's 0.05 does.
   */
  test('--forward f64: full LRP and transformer attribution at least as close to the float64 run as the official float32', () => {
    const golden64 = readJson<GoldenSegResults>('e2e', 'seg_S1', 'results_f64.json');
    const { s, stderr } = segOnGolden('f64', [
      '--forward',
      'f64',
      '--method',
      'lrp',
      '--method',
      'transformer_attribution',
    ]);
    assert.match(stderr, /forward: float64/);
    for (const [name, m] of Object.entries(s.methods)) {
      const f32 = golden.results[GOLDEN_NAME[name]!] as { pixAcc: number; mIoU: number; mAP: number };
      const f64 = golden64.results[GOLDEN_NAME[name]!] as { pixAcc: number; mIoU: number; mAP: number };
      for (const [key, ours] of [
        ['pixAcc', m.pixelAccuracy],
        ['mIoU', m.mIoU],
        ['mAP', m.mAP],
      ] as const) {
        const d = Math.abs(ours - 100 * f64[key]);
        const official = Math.abs(100 * f32[key] - 100 * f64[key]);
        assert.ok(d <= official || d <= 0.05, `${name} ${key}: ${d} from float64, the official float32 ${official}`);
        assert.ok(d <= 1e-3, `${name} ${key}: ${d} points from float64 (measured ≤ 4.4e-4)`);
      }
    }
  });

  test('one method alone gives the same numbers as in the shared pass', () => {
    const { s: one } = segOnGolden('one', ['--method', 'lrp_last_layer']);
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
