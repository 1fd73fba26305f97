/**
 * ImageNet-segmentation benchmark metrics (docs/benchmarks.md#per-image-scoring to #row-f1-quirk), reproducing
 * `baselines/ViT/imagenet_seg_eval.py` + `utils/metrices.py` of the reference implementation.
 *
 * Input per image: the final map `res` (H×W float32, already upsampled and min–max normalised by the caller;
 * NaN everywhere for a constant map, as the reference produces it) and the label mask (H×W, 0 = background,
 * 1 = foreground). Pure TypeScript, no TF.js.
 */

/** `np.spacing(1)`, the eps of the reference's pixAcc and IoU denominators. */
export const SEG_EPS = 2.220446049250313e-16;

// ---------------------------------------------------------------------------------------------------------
// torch float32 mean (the threshold)
// ---------------------------------------------------------------------------------------------------------

/**
 * `Vectorized<float>::size()` of the torch CPU kernels that produced the goldens (AVX2 and the default
 * capability both use 32-byte vectors; an AVX-512 build would use 16 and round differently). With 8 lanes,
 * the emulation below reproduces all 40 golden thresholds (golden/metrics/segmentation and golden/e2e/seg_S1)
 * bit for bit; a float64 sum rounded to float32 misses about a third of them by 1–2 ulp.
 */
const TORCH_LANES = 8;
/** `row_sum`'s ILP factor and `multi_row_sum`'s number of cascade levels (aten/src/ATen/native/cpu/SumKernel.cpp). */
const TORCH_ILP = 4;
const TORCH_LEVELS = 4;

/** c10::utils::CeilLog2. */
function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  let bits = 0;
  for (let v = x - 1; v > 0; v = Math.floor(v / 2)) bits++;
  return bits;
}

/**
 * torch (1.13, CPU, one thread) `sum` of a contiguous float32 vector, bit for bit: float32 accumulators in the
 * cascade of `multi_row_sum` (4 levels, level step 2^max(4, ⌊⌈log2 rows⌉/4⌋)), 4 interleaved rows of 8-lane vectors,
 * rows combined, then a sequential float32 sum of the scalar tail and of the 8 lanes. Float32Array stores round
 * every addition to float32 (a double sum of two floats rounded once is the correctly rounded float32 sum).
 */
export function torchFloat32Sum(x: ArrayLike<number>): number {
  const n = x.length;
  // Contiguous inner reduction: vectorised when at least one full vector fits, else the scalar path (1 lane).
  const lanes = n >= TORCH_LANES ? TORCH_LANES : 1;
  const count = Math.floor(n / lanes); // number of vectors
  const sizeIlp = Math.floor(count / TORCH_ILP);
  const levelPower = Math.max(4, Math.floor(ceilLog2(sizeIlp) / TORCH_LEVELS));
  const levelStep = 2 ** levelPower;
  const rowLen = TORCH_ILP * lanes;
  const acc = new Float32Array(TORCH_LEVELS * rowLen); // acc[level][row][lane]
  const addVectors = (i: number): void => {
    const base = i * rowLen;
    for (let k = 0; k < rowLen; k++) acc[k] = acc[k]! + (x[base + k] as number);
  };
  let i = 0;
  while (i + levelStep <= sizeIlp) {
    for (let j = 0; j < levelStep; j++, i++) addVectors(i);
    for (let j = 1; j < TORCH_LEVELS; j++) {
      for (let k = 0; k < rowLen; k++) {
        acc[j * rowLen + k] = acc[j * rowLen + k]! + acc[(j - 1) * rowLen + k]!;
        acc[(j - 1) * rowLen + k] = 0;
      }
      // (i & (level_mask << (j * level_power))) != 0, without 32-bit overflow
      if (Math.floor(i / 2 ** (j * levelPower)) % levelStep !== 0) break;
    }
  }
  for (; i < sizeIlp; i++) addVectors(i);
  for (let j = 1; j < TORCH_LEVELS; j++) for (let k = 0; k < rowLen; k++) acc[k] = acc[k]! + acc[j * rowLen + k]!;
  // row_sum: leftover vectors go to row 0, then rows 1..3 are added to row 0.
  for (let v = sizeIlp * TORCH_ILP; v < count; v++)
    for (let l = 0; l < lanes; l++) acc[l] = acc[l]! + (x[v * lanes + l] as number);
  for (let r = 1; r < TORCH_ILP; r++) for (let l = 0; l < lanes; l++) acc[l] = acc[l]! + acc[r * lanes + l]!;
  // vectorized_inner_sum: scalar tail first, then the lanes in order, into a float32 accumulator.
  let total = 0;
  for (let k = count * lanes; k < n; k++) total = Math.fround(total + (x[k] as number));
  for (let l = 0; l < lanes; l++) total = Math.fround(total + acc[l]!);
  return total;
}

/** torch CPU `x.mean()` of a float32 vector: the float32 sum above, divided by n in float32. NaN propagates. */
export function torchFloat32Mean(x: ArrayLike<number>): number {
  return Math.fround(torchFloat32Sum(x) / x.length);
}

// ---------------------------------------------------------------------------------------------------------
// numpy / sklearn reductions
// ---------------------------------------------------------------------------------------------------------

/**
 * numpy's float64 pairwise summation of one contiguous block (`pairwise_sum_DOUBLE`: 8 accumulators up to 128
 * elements, halves above).
 */
export function numpyPairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i] as number;
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j] as number;
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = r[j]! + (a[start + i + j] as number);
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i] as number;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return numpyPairwiseSum(a, start, n2) + numpyPairwiseSum(a, start + n2, n - n2);
}

/** numpy's default ufunc buffer size: the reduction's inner loop sees at most this many elements at a time. */
const NUMPY_BUFSIZE = 8192;

/**
 * `np.sum` of a contiguous float64 vector as numpy 1.24 (the goldens' version) computes it: pairwise within
 * chunks of 8192 elements, the chunk sums added in order to a 0-initialised accumulator. With this, all 40
 * golden APs are reproduced bit for bit; one pairwise sum over the whole vector (what numpy 2.x does) misses
 * about half of them by 1 ulp.
 */
export function numpySum(a: ArrayLike<number>): number {
  let acc = 0;
  for (let start = 0; start < a.length; start += NUMPY_BUFSIZE)
    acc += numpyPairwiseSum(a, start, Math.min(NUMPY_BUFSIZE, a.length - start));
  return acc;
}

/**
 * sklearn `average_precision_score(targets, scores)` (binary, no sample weights; sklearn 1.2 semantics):
 * entries sorted by score descending, exactly equal float32 scores form one threshold, and
 * AP = Σ_k (R_k − R_{k−1})·P_k over the thresholds (R_0 = 0), summed as numpy 1.24 does (`numpySum`). No positives → 0
 * (sklearn sets recall to 1, which gives the precision at the top threshold, 0); NaN → 0 (`np.nan_to_num`).
 * Scores must not be NaN (sklearn rejects them). O(n log n): one native sort of packed float64 keys.
 */
export function averagePrecision(scores: Float32Array, targets: Uint8Array): number {
  const n = scores.length;
  if (targets.length !== n) throw new Error(`averagePrecision: ${n} scores but ${targets.length} targets`);
  if (n === 0) return 0;
  // Key = (order-preserving uint32 of the float32 bits) · 2 + target: integers < 2^33, exact in a float64, so the
  // native numeric sort of a Float64Array orders by score and equal float32 scores share key >> 1.
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const keys = new Float64Array(n);
  let positives = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (Number.isNaN(s)) throw new Error('averagePrecision: NaN score (clean the map first, as the reference does)');
    f[0] = s === 0 ? 0 : s; // −0 and +0 are one threshold
    const bits = u[0]!;
    const ordered = bits >= 0x80000000 ? 0xffffffff - bits : bits + 0x80000000;
    const t = targets[i]!;
    if (t !== 0 && t !== 1) throw new Error(`averagePrecision: target ${t} at ${i} is not 0/1`);
    positives += t;
    keys[i] = ordered * 2 + t;
  }
  if (positives === 0) return 0;
  keys.sort();
  // Scan from the highest score; one term per distinct score.
  const terms = new Float64Array(n);
  let k = 0;
  let tp = 0;
  let prevRecall = 0;
  for (let i = n - 1; i >= 0; ) {
    const group = Math.floor(keys[i]! / 2);
    while (i >= 0 && Math.floor(keys[i]! / 2) === group) {
      tp += keys[i]! % 2;
      i--;
    }
    const seen = n - 1 - i; // tps + fps at this threshold
    const recall = tp / positives;
    const precision = tp / seen;
    terms[k++] = (recall - prevRecall) * precision;
    prevRecall = recall;
  }
  // sklearn: −np.sum(np.diff(recall_reversed) · precision_reversed[:-1]), i.e. the terms from the lowest threshold
  // up; the negations are exact, so this is numpy's sum of the reversed terms.
  const ordered = terms.subarray(0, k).reverse();
  const ap = numpySum(ordered);
  return Number.isNaN(ap) ? 0 : ap + 0;
}

/**
 * sklearn `f1_score(label_row, pred_row)` (binary, pos_label 1; sklearn 1.2 arithmetic:
 * 2·P·R/(P + R), undefined precision/recall/F → 0).
 */
function binaryF1(tp: number, predicted: number, actual: number): number {
  const precision = predicted === 0 ? 0 : tp / predicted;
  const recall = actual === 0 ? 0 : tp / actual;
  const denom = precision + recall;
  return denom === 0 ? 0 : (2 * precision * recall) / denom;
}

// ---------------------------------------------------------------------------------------------------------
// Per image
// ---------------------------------------------------------------------------------------------------------

export interface ImageSegStats {
  /** t = torch float32 `Res.mean()` (NaN for a constant map). */
  threshold: number;
  /** Pixels predicted foreground (Res > t). */
  fgPixels: number;
  /** #(pred == label). */
  correct: number;
  /** #(label ≥ 0) = every pixel. */
  labeled: number;
  /** [bg, fg] intersections #(pred == c ∧ label == c). */
  inter: [number, number];
  /** [bg, fg] unions #(pred == c) + #(label == c) − inter_c. */
  union: [number, number];
  /** Pooled AP over the 2·H·W scores [1 − Res, Res] against [label == 0, label == 1] (§4.1.6). */
  ap: number;
  /** Reference quirk (§4.1.7): sklearn F1 of the foreground prediction per image ROW (H values). */
  f1Rows: Float64Array;
  /** np.mean of f1Rows. */
  rowF1Mean: number;
}

export interface SegmentImageOptions {
  /**
   * The map was constant (min–max normalisation gave 0/0). The reference then has a NaN map: t = NaN, FG = BG = 0
   * (prediction = background everywhere, the argmax tie goes to channel 0) and both AP channels zeroed, so
   * AP = 0.5. `res` is then ignored (it may be the NaN map or zeros). A `res` containing NaN is handled the same
   * way without this flag (NaN → 0 per element in the AP channels, NaN threshold).
   */
  constant?: boolean;
  /** Row length W (the F1 rows). Default: √(length) for a square map. */
  width?: number;
}

/** The per-image metrics of `eval_batch` (§4.1.4 steps 3–7) for one normalised map and its mask. */
export function segmentImage(res: Float32Array, label: Uint8Array, opts: SegmentImageOptions = {}): ImageSegStats {
  const n = res.length;
  if (label.length !== n) throw new Error(`segmentImage: map has ${n} pixels but the label has ${label.length}`);
  const width = opts.width ?? Math.round(Math.sqrt(n));
  if (!(width > 0) || n % width !== 0)
    throw new Error(`segmentImage: cannot split ${n} pixels into rows of ${width} (pass opts.width)`);
  const height = n / width;
  const constant = opts.constant ?? false;

  const threshold = constant ? Number.NaN : torchFloat32Mean(res);
  // FG = Res > t; with t = NaN nothing is FG and BG = Res <= t is 0 too, so argmax picks background.
  const pred = new Uint8Array(n);
  let fgPixels = 0;
  if (!Number.isNaN(threshold)) {
    for (let i = 0; i < n; i++) {
      if (res[i]! > threshold) {
        pred[i] = 1;
        fgPixels++;
      }
    }
  }

  let labelFg = 0;
  let interFg = 0;
  let interBg = 0;
  for (let i = 0; i < n; i++) {
    const y = label[i]!;
    if (y !== 0 && y !== 1) throw new Error(`segmentImage: label ${y} at pixel ${i} is not 0/1`);
    labelFg += y;
    if (pred[i] === y) {
      if (y === 1) interFg++;
      else interBg++;
    }
  }
  const predBg = n - fgPixels;
  const labelBg = n - labelFg;
  const inter: [number, number] = [interBg, interFg];
  const union: [number, number] = [predBg + labelBg - interBg, fgPixels + labelFg - interFg];

  // AP channels (1 − Res, Res) in float32, NaN → 0 in each; targets are the one-hot of the mask.
  const scores = new Float32Array(2 * n);
  const targets = new Uint8Array(2 * n);
  if (!constant) {
    for (let i = 0; i < n; i++) {
      const v = res[i]!;
      if (Number.isNaN(v)) continue;
      scores[i] = 1 - v; // rounded to float32 by the store, as torch's float32 `1 - Res`
      scores[n + i] = v;
    }
  }
  for (let i = 0; i < n; i++) {
    const y = label[i]!;
    targets[i] = 1 - y;
    targets[n + i] = y;
  }
  const ap = averagePrecision(scores, targets);

  const f1Rows = new Float64Array(height);
  for (let r = 0; r < height; r++) {
    let tp = 0;
    let predicted = 0;
    let actual = 0;
    for (let i = r * width, end = i + width; i < end; i++) {
      const p = pred[i]!;
      const y = label[i]!;
      predicted += p;
      actual += y;
      tp += p & y;
    }
    f1Rows[r] = binaryF1(tp, predicted, actual);
  }

  return {
    threshold,
    fgPixels,
    correct: interBg + interFg,
    labeled: n,
    inter,
    union,
    ap,
    f1Rows,
    rowF1Mean: numpySum(f1Rows) / height,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Exact sums (order-independent accumulation of AP and row-F1)
// ---------------------------------------------------------------------------------------------------------

/**
 * Exact float64 sum (Shewchuk's non-overlapping partials, as Python's `math.fsum`): the value is the correctly
 * rounded exact sum, so it does not depend on the order of additions, and partials serialise exactly as JSON
 * numbers. Used so that checkpoint/resume and shard merges give the same bits as a single run.
 */
class ExactSum {
  partials: number[] = [];

  add(x: number): void {
    if (!Number.isFinite(x)) throw new Error(`ExactSum: non-finite value ${x}`);
    const p = this.partials;
    let i = 0;
    for (let j = 0; j < p.length; j++) {
      let y = p[j]!;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) p[i++] = lo;
      x = hi;
    }
    p.length = i;
    if (x !== 0) p.push(x);
  }

  value(): number {
    const p = this.partials;
    let n = p.length;
    if (n === 0) return 0;
    let hi = p[--n]!;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = p[--n]!;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // Round half to even across the remaining partials (math.fsum's correction).
    if (n > 0 && ((lo < 0 && p[n - 1]! < 0) || (lo > 0 && p[n - 1]! > 0))) {
      const y = lo * 2;
      const x = hi + y;
      if (y === x - hi) hi = x;
    }
    return hi;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Data set accumulation
// ---------------------------------------------------------------------------------------------------------

export interface SegmentationTotals {
  correct: number;
  labeled: number;
  inter: [number, number];
  union: [number, number];
}

export interface SegmentationResult {
  /** Σcorrect / (eps + Σlabeled) — dataset level. Fraction (×100 for percent). */
  pixelAccuracy: number;
  /** Mean of `iou` over the 2 classes. */
  mIoU: number;
  /** [bg, fg]: Σinter_c / (eps + Σunion_c) — dataset level. */
  iou: [number, number];
  /** Mean over images of the pooled per-image AP (NaN with no images, like np.mean([])). */
  mAP: number;
  /** Reference quirk, not a paper metric: mean over all image ROWS of the row-F1 (NaN with no images). */
  mF1: number;
  images: number;
  /** Number of row-F1 values in mF1. */
  rows: number;
  totals: SegmentationTotals;
}

export interface SegmentationAccumulatorJSON {
  kind: 'segmentation-accumulator';
  version: 1;
  images: number;
  rows: number;
  totals: SegmentationTotals;
  /** Exact-sum partials of the per-image APs and of all row-F1s. */
  apSum: number[];
  f1Sum: number[];
}

/**
 * Running totals of `imagenet_seg_eval.py` (§4.1.5): integer counts summed over images, AP and row-F1 summed
 * exactly. add/merge in any order and any split give identical results; toJSON/fromJSON round-trips exactly.
 * (The reference's np.mean of the AP list may differ from our correctly rounded mean in the last bit.)
 */
export class SegmentationAccumulator {
  private images = 0;
  private rows = 0;
  private correct = 0;
  private labeled = 0;
  private readonly inter: [number, number] = [0, 0];
  private readonly union: [number, number] = [0, 0];
  private apSum = new ExactSum();
  private f1Sum = new ExactSum();

  add(stats: ImageSegStats): this {
    this.images++;
    this.correct += stats.correct;
    this.labeled += stats.labeled;
    for (const c of [0, 1] as const) {
      this.inter[c] += stats.inter[c];
      this.union[c] += stats.union[c];
    }
    this.apSum.add(stats.ap);
    for (const f of stats.f1Rows) this.f1Sum.add(f);
    this.rows += stats.f1Rows.length;
    return this;
  }

  /** Adds another accumulator's images (e.g. another shard of the data set). */
  merge(other: SegmentationAccumulator): this {
    this.images += other.images;
    this.rows += other.rows;
    this.correct += other.correct;
    this.labeled += other.labeled;
    for (const c of [0, 1] as const) {
      this.inter[c] += other.inter[c];
      this.union[c] += other.union[c];
    }
    for (const p of other.apSum.partials) this.apSum.add(p);
    for (const p of other.f1Sum.partials) this.f1Sum.add(p);
    return this;
  }

  result(): SegmentationResult {
    const iou: [number, number] = [
      this.inter[0] / (SEG_EPS + this.union[0]),
      this.inter[1] / (SEG_EPS + this.union[1]),
    ];
    return {
      pixelAccuracy: this.correct / (SEG_EPS + this.labeled),
      mIoU: (iou[0] + iou[1]) / 2,
      iou,
      mAP: this.images === 0 ? Number.NaN : this.apSum.value() / this.images,
      mF1: this.rows === 0 ? Number.NaN : this.f1Sum.value() / this.rows,
      images: this.images,
      rows: this.rows,
      totals: { correct: this.correct, labeled: this.labeled, inter: [...this.inter], union: [...this.union] },
    };
  }

  toJSON(): SegmentationAccumulatorJSON {
    return {
      kind: 'segmentation-accumulator',
      version: 1,
      images: this.images,
      rows: this.rows,
      totals: { correct: this.correct, labeled: this.labeled, inter: [...this.inter], union: [...this.union] },
      apSum: [...this.apSum.partials],
      f1Sum: [...this.f1Sum.partials],
    };
  }

  static fromJSON(json: unknown): SegmentationAccumulator {
    const j = json as Partial<SegmentationAccumulatorJSON> | null;
    const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
    const pair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && v.every(count);
    const sums = (v: unknown): v is number[] =>
      Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
    const t = j?.totals;
    if (
      j?.kind !== 'segmentation-accumulator' ||
      j.version !== 1 ||
      !count(j.images) ||
      !count(j.rows) ||
      !t ||
      !count(t.correct) ||
      !count(t.labeled) ||
      !pair(t.inter) ||
      !pair(t.union) ||
      !sums(j.apSum) ||
      !sums(j.f1Sum)
    )
      throw new Error('SegmentationAccumulator.fromJSON: not a version-1 segmentation accumulator checkpoint');
    const acc = new SegmentationAccumulator();
    acc.images = j.images;
    acc.rows = j.rows;
    acc.correct = t.correct;
    acc.labeled = t.labeled;
    acc.inter[0] = t.inter[0];
    acc.inter[1] = t.inter[1];
    acc.union[0] = t.union[0];
    acc.union[1] = t.union[1];
    // Re-adding the partials reproduces the same exact sum (and re-normalises a hand-edited list).
    for (const p of j.apSum) acc.apSum.add(p);
    for (const p of j.f1Sum) acc.f1Sum.add(p);
    return acc;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Metric metadata and the reference printout
// ---------------------------------------------------------------------------------------------------------

export type SegmentationMetricKey = 'pixelAccuracy' | 'mIoU' | 'mAP' | 'mF1';

export interface SegmentationMetricInfo {
  /** Field of SegmentationResult. */
  key: SegmentationMetricKey;
  label: string;
  /** Reported unit (the result holds fractions; reports multiply by 100). */
  unit: 'percent';
  direction: 'higher';
  reduction: 'dataset-level counts' | 'mean over images' | 'mean over image rows';
  /** Reported in the paper's segmentation table. */
  inPaper: boolean;
  description: string;
}

/** The segmentation benchmark's metrics, described for reports and regression checks (Quantus-style). */
export const SEGMENTATION_METRICS: readonly SegmentationMetricInfo[] = [
  {
    key: 'pixelAccuracy',
    label: 'pixel accuracy',
    unit: 'percent',
    direction: 'higher',
    reduction: 'dataset-level counts',
    inPaper: true,
    description: 'Σ correct pixels / Σ pixels over the data set; prediction = map > its mean',
  },
  {
    key: 'mIoU',
    label: 'mIoU',
    unit: 'percent',
    direction: 'higher',
    reduction: 'dataset-level counts',
    inPaper: true,
    description: 'mean over {background, foreground} of Σ intersection / Σ union over the data set',
  },
  {
    key: 'mAP',
    label: 'mAP',
    unit: 'percent',
    direction: 'higher',
    reduction: 'mean over images',
    inPaper: true,
    description: 'mean over images of one AP pooled over the scores [1 − map, map] against [background, foreground]',
  },
  {
    key: 'mF1',
    label: 'row-F1 (reference quirk)',
    unit: 'percent',
    direction: 'higher',
    reduction: 'mean over image rows',
    inPaper: false,
    description:
      'mean over all image rows of the per-row foreground F1 that get_f1_scores computes; not a paper metric',
  },
];

/**
 * Python `'%.Nf' % x`: the exact binary value of x rounded half-to-even to `digits` decimals
 * (Number.prototype.toFixed rounds exact ties up instead).
 */
export function formatFixedPython(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const negative = x < 0 || Object.is(x, -0);
  // x = mant · 2^exp exactly.
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const hiWord = view.getUint32(0);
  const biased = (hiWord >>> 20) & 0x7ff;
  let mant = (BigInt(hiWord & 0xfffff) << 32n) | BigInt(view.getUint32(4));
  let exp: number;
  if (biased === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = biased - 1075;
  }
  // scaled = x · 10^digits as the fraction num / den, rounded half-to-even.
  let num = mant * 10n ** BigInt(digits);
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  let q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) q += 1n;
  let s = q.toString().padStart(digits + 1, '0');
  if (digits > 0) s = `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  return negative ? `-${s}` : s;
}

/** The four lines `imagenet_seg_eval.py` prints and writes to result_mIoU_*.txt (Python %-formatting). */
export function formatReferenceLines(result: SegmentationResult): [string, string, string, string] {
  return [
    `Mean IoU over 2 classes: ${formatFixedPython(result.mIoU, 4)}`,
    `Pixel-wise Accuracy: ${formatFixedPython(result.pixelAccuracy * 100, 2).padStart(2)}%`,
    `Mean AP over 2 classes: ${formatFixedPython(result.mAP, 4)}`,
    `Mean F1 over 2 classes: ${formatFixedPython(result.mF1, 4)}`,
  ];
}
