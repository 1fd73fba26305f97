import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HostData, StateDict } from '../src/formats/host-tensor.js';
import {
  averagePrecision,
  formatFixedPython,
  formatReferenceLines,
  type ImageSegStats,
  SEGMENTATION_METRICS,
  SegmentationAccumulator,
  type SegmentationResult,
  segmentImage,
  torchFloat32Mean,
  torchFloat32Sum,
} from '../src/metrics/segmentation.js';
import { assertRel } from './helpers/compare.js';
import { readGoldenTensors, readJson } from './helpers/golden.js';

// ------------------------------------------------------------------------------------------------ helpers

function tensor(sd: StateDict, name: string): HostData {
  const t = sd.get(name);
  if (!t) throw new Error(`golden tensor '${name}' not found`);
  return t.data;
}

function f32(sd: StateDict, name: string): Float32Array {
  const d = tensor(sd, name);
  assert.ok(d instanceof Float32Array, `${name} is not float32`);
  return d;
}

function f64(sd: StateDict, name: string): Float64Array {
  const d = tensor(sd, name);
  assert.ok(d instanceof Float64Array, `${name} is not float64`);
  return d;
}

/** A 0/1 mask of any integer dtype as Uint8Array. */
function mask(sd: StateDict, name: string): Uint8Array {
  const d = tensor(sd, name);
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!);
  return out;
}

/** Row-F1 values are reproduced bit for bit. */
function assertRows(actual: Float64Array, expected: Float64Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: row count`);
  for (let r = 0; r < actual.length; r++) assert.equal(actual[r], expected[r], `${what} row ${r}`);
}

/** torch float32 `(x − min)/(max − min)`: what the caller does before segmentImage (here only to pin the contract). */
function minMaxFloat32(x: Float32Array): Float32Array {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = Math.fround(hi - lo);
  return x.map((v) => Math.fround(v - lo) / range);
}

/** The reference's tqdm description after each image. */
function tqdmLine(r: SegmentationResult): string {
  const f = (x: number) => formatFixedPython(x, 4);
  return `pixAcc: ${f(r.pixelAccuracy)}, mIoU: ${f(r.mIoU)}, mAP: ${f(r.mAP)}, mF1: ${f(r.mF1)}`;
}

/** Direct AP definition: for each distinct score (descending) count everything ≥ it. O(n · thresholds). */
function bruteForceAp(scores: ArrayLike<number>, targets: ArrayLike<number>): number {
  const distinct = [...new Set(Array.from(scores))].sort((a, b) => b - a);
  let positives = 0;
  for (let i = 0; i < targets.length; i++) positives += targets[i]!;
  let ap = 0;
  let prevRecall = 0;
  for (const t of distinct) {
    let tp = 0;
    let seen = 0;
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! >= t) {
        seen++;
        tp += targets[i]!;
      }
    }
    const recall = tp / positives;
    ap += (recall - prevRecall) * (tp / seen);
    prevRecall = recall;
  }
  return ap;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resultsEqual(a: SegmentationResult, b: SegmentationResult): void {
  assert.deepEqual(a, b);
  for (const k of ['pixelAccuracy', 'mIoU', 'mAP', 'mF1'] as const) assert.ok(Object.is(a[k], b[k]), k);
}

// ------------------------------------------------------------------------------------------------ goldens

interface RunImage {
  threshold_mean_of_res_norm: number;
  pixel_correct: number;
  pixel_labeled: number;
  area_inter_bg_fg: [number, number];
  area_union_bg_fg: [number, number];
  ap: number;
  f1_rows_mean: number;
  tqdm_description_after: string;
}

interface RunResults {
  per_image: RunImage[];
  final: {
    IoU_per_class: [number, number];
    mAP: number;
    mF1: number;
    mIoU: number;
    pixAcc: number;
    total_correct: number;
    total_inter: [number, number];
    total_label: number;
    total_union: [number, number];
  };
  result_txt: string;
  stdout: string;
}

function checkFinal(result: SegmentationResult, lines: string[], run: RunResults): void {
  const f = run.final;
  assert.deepEqual(result.totals, {
    correct: f.total_correct,
    labeled: f.total_label,
    inter: f.total_inter,
    union: f.total_union,
  });
  assert.equal(result.pixelAccuracy, f.pixAcc, 'pixAcc');
  assert.equal(result.mIoU, f.mIoU, 'mIoU');
  assert.equal(result.iou[0], f.IoU_per_class[0], 'IoU bg');
  assert.equal(result.iou[1], f.IoU_per_class[1], 'IoU fg');
  // mAP/mF1: exact sums, correctly rounded; np.mean may differ in the last bit. Measured relative error 0 on
  // run_a and run_full_a, at most 2.3e-16 (one ulp) on the S1 runs below; bound 1e-15 (about 4.5 ulps).
  assertRel(result.mAP, f.mAP, 1e-15, 'mAP');
  assertRel(result.mF1, f.mF1, 1e-15, 'mF1');
  assert.equal(`${lines.join('\n')}\n`, run.result_txt);
  assert.equal(lines.map((l) => `${l}\n\n`).join(''), run.stdout);
}

for (const run of ['run_a', 'run_full_a']) {
  describe(`golden metrics/segmentation/${run}`, () => {
    const dir = ['metrics', 'segmentation', run] as const;
    const results = readJson<RunResults>(...dir, 'results.json');
    const inputs = readGoldenTensors(...dir, 'inputs.safetensors');
    const inter = readGoldenTensors(...dir, 'intermediates.safetensors');

    test('per-image counts, threshold, AP, row-F1 and the running/final numbers', () => {
      const acc = new SegmentationAccumulator();
      results.per_image.forEach((g, i) => {
        const res = f32(inter, `img${i}.res_norm`);
        const label = mask(inputs, `img${i}.mask`);
        const s = segmentImage(res, label);
        assert.equal(s.threshold, Math.fround(g.threshold_mean_of_res_norm), `img${i} threshold (bit-exact float32)`);
        const predFg = f32(inter, `img${i}.pred_fg`);
        assert.equal(
          s.fgPixels,
          predFg.reduce((a, v) => a + v, 0),
          `img${i} fg pixels`,
        );
        assert.equal(s.correct, g.pixel_correct);
        assert.equal(s.labeled, g.pixel_labeled);
        assert.deepEqual(s.inter, g.area_inter_bg_fg);
        assert.deepEqual(s.union, g.area_union_bg_fg);
        // AP and row-F1 come out bit for bit (the brief's bound is 1e-12 relative).
        assert.equal(s.ap, g.ap, `img${i} ap`);
        assertRows(s.f1Rows, f64(inter, `img${i}.f1_rows`), `img${i} f1`);
        assert.equal(s.rowF1Mean, g.f1_rows_mean, `img${i} f1 mean`);
        acc.add(s);
        assert.equal(tqdmLine(acc.result()), g.tqdm_description_after, `tqdm after img${i}`);
      });
      const result = acc.result();
      checkFinal(result, formatReferenceLines(result), results);
    });

    test('the caller does upsampling + min–max normalisation; segmentImage takes the normalised map', () => {
      results.per_image.forEach((g, i) => {
        // For 14×14 maps the golden's upsampled relevance is the caller's job; run_full_a has none (full LRP).
        const source = run === 'run_a' ? `img${i}.upsampled_relevance` : `img${i}.relevance`;
        const normalised = minMaxFloat32(f32(inter.has(source) ? inter : inputs, source));
        assert.deepEqual(normalised, f32(inter, `img${i}.res_norm`));
        const s = segmentImage(normalised, mask(inputs, `img${i}.mask`));
        assert.equal(s.correct, g.pixel_correct);
        // Measured relative error 0 (bit for bit, as above); bound 1e-15, a few ulps.
        assertRel(s.ap, g.ap, 1e-15, `img${i} ap`);
      });
      // A 14×14 map is not upsampled for you: a map and a mask of different sizes are rejected.
      if (run === 'run_a')
        assert.throws(() => segmentImage(f32(inputs, 'img0.relevance'), mask(inputs, 'img0.mask')), /pixels/);
    });
  });
}

interface E2eMethod {
  status: string;
  pixAcc: number;
  mIoU: number;
  IoU_bg_fg: [number, number];
  mAP: number;
  mF1_rowwise: number;
  total_correct: number;
  total_label: number;
  total_inter_bg_fg: [number, number];
  total_union_bg_fg: [number, number];
  per_image_ap: number[];
  result_txt: string;
  printed: string;
}

interface E2eImage {
  threshold_mean: number;
  fg_pred_pixels: number;
  pixel_correct: number;
  pixel_labeled: number;
  area_inter_bg_fg: [number, number];
  area_union_bg_fg: [number, number];
  ap: number;
  f1_rows_mean: number;
  tqdm_description_after: string;
}

describe('golden e2e/seg_S1: the script’s maps through our metrics', () => {
  const e2e = readJson<{ results: Record<string, E2eMethod>; per_image: Record<string, E2eImage[]> }>(
    'e2e',
    'seg_S1',
    'results.json',
  );
  const sd = readGoldenTensors('e2e', 'seg_S1', 'intermediates.safetensors');
  const methods = Object.entries(e2e.results).filter(([, r]) => r.status === 'ok');

  test('six methods are present (lrp crashes in the reference)', () => {
    assert.deepEqual(methods.map(([m]) => m).sort(), [
      'attn_gradcam',
      'attn_last_layer',
      'full_lrp',
      'lrp_last_layer',
      'rollout',
      'transformer_attribution',
    ]);
    assert.notEqual(e2e.results.lrp?.status, 'ok');
  });

  for (const [method, r] of methods) {
    test(method, () => {
      const images = e2e.per_image[method]!;
      assert.equal(images.length, 6);
      const acc = new SegmentationAccumulator();
      images.forEach((g, i) => {
        const s = segmentImage(f32(sd, `${method}.img${i}.res`), mask(sd, `img${i}.label`));
        // full_lrp has pixels one float32 ulp from the threshold: a bit-exact mean is what makes the counts exact.
        assert.equal(s.threshold, Math.fround(g.threshold_mean), `img${i} threshold`);
        assert.equal(s.fgPixels, g.fg_pred_pixels);
        assert.equal(s.correct, g.pixel_correct);
        assert.equal(s.labeled, g.pixel_labeled);
        assert.deepEqual(s.inter, g.area_inter_bg_fg);
        assert.deepEqual(s.union, g.area_union_bg_fg);
        assert.equal(s.ap, g.ap, `img${i} ap (bit for bit)`);
        assert.equal(s.ap, r.per_image_ap[i]!, `img${i} ap (list)`);
        assertRows(s.f1Rows, f64(sd, `${method}.img${i}.f1_rows`), `img${i} f1`);
        assert.equal(s.rowF1Mean, g.f1_rows_mean, `img${i} f1 mean`);
        acc.add(s);
        assert.equal(tqdmLine(acc.result()), g.tqdm_description_after, `tqdm after img${i}`);
      });
      const result = acc.result();
      assert.deepEqual(result.totals, {
        correct: r.total_correct,
        labeled: r.total_label,
        inter: r.total_inter_bg_fg,
        union: r.total_union_bg_fg,
      });
      assert.equal(result.pixelAccuracy, r.pixAcc, 'pixAcc');
      assert.equal(result.mIoU, r.mIoU, 'mIoU');
      assert.equal(result.iou[0], r.IoU_bg_fg[0], 'IoU bg');
      assert.equal(result.iou[1], r.IoU_bg_fg[1], 'IoU fg');
      // Measured relative error ≤ 1.7e-16 (mAP) and 2.3e-16 (mF1), one ulp; bound 1e-15 (× 4.4). The brief
      // allowed 1e-9.
      assertRel(result.mAP, r.mAP, 1e-15, 'mAP');
      assertRel(result.mF1, r.mF1_rowwise, 1e-15, 'mF1');
      const lines = formatReferenceLines(result);
      assert.equal(`${lines.join('\n')}\n`, r.result_txt);
      assert.equal(lines.map((l) => `${l}\n\n`).join(''), r.printed);
    });
  }
});

// ------------------------------------------------------------------------------------------------ unit tests

/** A 16×16 mask with a blob in the middle rows and a few empty rows. */
function blobMask(size = 16): Uint8Array {
  const m = new Uint8Array(size * size);
  for (let y = 4; y < 11; y++) for (let x = 3; x < 12; x++) m[y * size + x] = 1;
  return m;
}

describe('segmentImage', () => {
  test('all correct: the map equals the mask', () => {
    const label = blobMask();
    const res = Float32Array.from(label);
    const s = segmentImage(res, label);
    assert.equal(s.threshold, Math.fround(63 / 256));
    assert.equal(s.correct, 256);
    assert.equal(s.labeled, 256);
    assert.deepEqual(s.inter, [256 - 63, 63]);
    assert.deepEqual(s.union, [256 - 63, 63]);
    assert.equal(s.ap, 1);
    assert.deepEqual(
      Array.from(s.f1Rows),
      Array.from({ length: 16 }, (_, r) => (r >= 4 && r < 11 ? 1 : 0)),
    );
    const acc = new SegmentationAccumulator().add(s).result();
    // 256 / (256 + ε) rounds to 1 exactly: measured |Δ| 0; bound 1e-15, a few ulps of 1.
    assert.ok(Math.abs(acc.pixelAccuracy - 1) < 1e-15 && Math.abs(acc.mIoU - 1) < 1e-15);
    assert.equal(acc.mAP, 1);
  });

  test('all wrong: the map is the inverted mask', () => {
    const label = blobMask();
    const res = Float32Array.from(label, (v) => 1 - v);
    const s = segmentImage(res, label);
    assert.equal(s.correct, 0);
    assert.deepEqual(s.inter, [0, 0]);
    assert.deepEqual(s.union, [256, 256]);
    assert.deepEqual(Array.from(s.f1Rows), new Array(16).fill(0));
    // Every positive scores 0, every negative 1: AP = Σ over thresholds {1, 0} = 0 + 1·(1/2).
    assert.equal(s.ap, 0.5);
    assert.equal(new SegmentationAccumulator().add(s).result().mIoU, 0);
  });

  test('pooled AP with many exact ties matches a brute-force AP', () => {
    const next = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const size = 8 + Math.floor(next() * 12);
      const n = size * size;
      const levels = 2 + Math.floor(next() * 9); // few distinct values → heavy ties
      const res = Float32Array.from({ length: n }, () => Math.floor(next() * levels) / (levels - 1));
      const label = Uint8Array.from({ length: n }, (_, i) => (next() < 0.3 + 0.4 * res[i]! ? 1 : 0));
      const s = segmentImage(res, label);
      const scores = [...Array.from(res, (v) => Math.fround(1 - v)), ...res];
      const targets = [...Array.from(label, (y) => 1 - y), ...label];
      // Measured relative error ≤ 3.6e-16 over the 20 trials (summation order); bound 1e-15 (× 2.8).
      assertRel(s.ap, bruteForceAp(scores, targets), 1e-15, `trial ${trial}`);
    }
  });

  test('averagePrecision groups exactly equal float32 scores only (and ±0 together)', () => {
    const a = Math.fround(0.3);
    const b = Math.fround(a + 2 ** -25); // the next float32 above 0.3: a separate threshold
    assert.notEqual(a, b);
    const scores = Float32Array.from([b, a, a, 0, -0, 0.9]);
    const targets = Uint8Array.from([0, 1, 0, 1, 0, 1]);
    // Measured relative error 0; bound 1e-15, a few ulps.
    assertRel(averagePrecision(scores, targets), bruteForceAp(scores, targets), 1e-15, 'ties');
    assert.equal(averagePrecision(Float32Array.from([0.1, 0.2]), Uint8Array.from([0, 0])), 0);
    assert.throws(() => averagePrecision(Float32Array.from([Number.NaN]), Uint8Array.from([1])), /NaN/);
  });

  test('constant map (reference NaN map): all background, AP = 0.5', () => {
    const label = blobMask();
    const expectBg = (s: ImageSegStats) => {
      assert.ok(Number.isNaN(s.threshold));
      assert.equal(s.fgPixels, 0);
      assert.equal(s.correct, 256 - 63);
      assert.deepEqual(s.inter, [256 - 63, 0]);
      assert.deepEqual(s.union, [256, 63]);
      assert.equal(s.ap, 0.5);
      assert.equal(s.rowF1Mean, 0);
    };
    expectBg(segmentImage(new Float32Array(256), label, { constant: true }));
    expectBg(segmentImage(new Float32Array(256).fill(Number.NaN), label));
    // An all-zero map without the flag predicts the same, but its AP channels (1, 0) are not the reference's.
    const zeros = segmentImage(new Float32Array(256), label);
    assert.equal(zeros.correct, 256 - 63);
    assert.notEqual(zeros.ap, 0.5);
  });

  test('non-square maps need the row width; labels must be 0/1', () => {
    const res = Float32Array.from({ length: 24 }, (_, i) => i / 23);
    const label = Uint8Array.from({ length: 24 }, (_, i) => (i >= 12 ? 1 : 0));
    assert.throws(() => segmentImage(res, label), /rows/);
    const s = segmentImage(res, label, { width: 6 });
    assert.equal(s.f1Rows.length, 4);
    assert.equal(s.correct, 24);
    assert.throws(
      () =>
        segmentImage(
          res,
          Uint8Array.from(label, () => 2),
          { width: 6 },
        ),
      /not 0\/1/,
    );
  });
});

describe('torch float32 mean', () => {
  test('small vectors follow the scalar path, larger ones the 8-lane cascade', () => {
    assert.equal(torchFloat32Sum(Float32Array.from([1, 2, 3])), 6);
    assert.equal(torchFloat32Sum(new Float32Array(0)), 0);
    const x = Float32Array.from({ length: 1000 }, (_, i) => i);
    assert.equal(torchFloat32Sum(x), 499500);
    assert.equal(torchFloat32Mean(x), Math.fround(499.5));
    assert.ok(Number.isNaN(torchFloat32Mean(Float32Array.from([1, Number.NaN, 3, 4, 5, 6, 7, 8, 9]))));
    // float32 accumulation differs from an exact sum: 2^24 + 1 + 1 … in float32 loses the ones lane by lane.
    const big = new Float32Array(16).fill(1);
    big[0] = 2 ** 24;
    assert.equal(torchFloat32Sum(big), 2 ** 24 + 14); // lane 0 loses its +1; lanes 1–7 keep 2 each
  });
});

describe('SegmentationAccumulator', () => {
  const next = rng(11);
  const images: ImageSegStats[] = Array.from({ length: 9 }, () => {
    const res = Float32Array.from({ length: 32 * 32 }, () => next());
    const label = Uint8Array.from(res, (v) => (next() < v ? 1 : 0));
    return segmentImage(res, label);
  });
  // plus a constant map (AP 0.5)
  images.push(segmentImage(new Float32Array(32 * 32), new Uint8Array(32 * 32).fill(1, 0, 300), { constant: true }));
  const single = () => images.reduce((acc, s) => acc.add(s), new SegmentationAccumulator());

  test('toJSON / fromJSON checkpoint resumes to identical results', () => {
    const first = new SegmentationAccumulator();
    for (const s of images.slice(0, 4)) first.add(s);
    const restored = SegmentationAccumulator.fromJSON(JSON.parse(JSON.stringify(first)));
    resultsEqual(restored.result(), first.result());
    // Restoring re-normalises the exact-sum partials (same exact sum); a second round trip is a fixed point.
    const again = SegmentationAccumulator.fromJSON(JSON.parse(JSON.stringify(restored)));
    assert.deepEqual(again.toJSON(), restored.toJSON());
    for (const s of images.slice(4)) restored.add(s);
    resultsEqual(restored.result(), single().result());
    assert.throws(() => SegmentationAccumulator.fromJSON({ kind: 'other' }), /checkpoint/);
  });

  test('merge of shards (any split, any order) equals one accumulator', () => {
    const expected = single().result();
    const a = new SegmentationAccumulator();
    const b = new SegmentationAccumulator();
    const c = new SegmentationAccumulator();
    images.forEach((s, i) => {
      [a, b, c][i % 3]!.add(s);
    });
    resultsEqual(c.merge(a).merge(b).result(), expected);
    const reversed = [...images].reverse().reduce((acc, s) => acc.add(s), new SegmentationAccumulator());
    resultsEqual(new SegmentationAccumulator().merge(reversed).result(), expected);
  });

  test('empty accumulator', () => {
    const r = new SegmentationAccumulator().result();
    assert.equal(r.pixelAccuracy, 0);
    assert.equal(r.mIoU, 0);
    assert.ok(Number.isNaN(r.mAP) && Number.isNaN(r.mF1));
    assert.equal(r.images, 0);
  });
});

describe('reference printout and metric metadata', () => {
  test('Python %-format rounding (half-even on the exact binary value)', () => {
    assert.equal(formatFixedPython(0.125, 2), '0.12'); // exact tie → even (toFixed gives 0.13)
    assert.equal(formatFixedPython(0.375, 2), '0.38');
    assert.equal(formatFixedPython(2.675, 2), '2.67'); // 2.67499999…
    assert.equal(formatFixedPython(0.5, 0), '0');
    assert.equal(formatFixedPython(-0, 4), '-0.0000');
    assert.equal(formatFixedPython(71.84244791666666, 2), '71.84');
    assert.equal(formatFixedPython(5e-324, 4), '0.0000');
    assert.equal(formatFixedPython(1234.56789, 3), '1234.568');
    assert.equal(formatFixedPython(Number.NaN, 4), 'nan');
  });

  test('SEGMENTATION_METRICS describes every reported number', () => {
    const byKey = Object.fromEntries(SEGMENTATION_METRICS.map((m) => [m.key, m]));
    assert.deepEqual(Object.keys(byKey).sort(), ['mAP', 'mF1', 'mIoU', 'pixelAccuracy']);
    assert.equal(byKey.pixelAccuracy?.label, 'pixel accuracy');
    assert.equal(byKey.mIoU?.reduction, 'dataset-level counts');
    assert.equal(byKey.pixelAccuracy?.reduction, 'dataset-level counts');
    assert.equal(byKey.mAP?.reduction, 'mean over images');
    for (const m of SEGMENTATION_METRICS) {
      assert.equal(m.unit, 'percent');
      assert.equal(m.direction, 'higher');
      assert.equal(m.inPaper, m.key !== 'mF1');
    }
  });
});
