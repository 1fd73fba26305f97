/**
 * The perturbation test of `baselines/ViT/pertubation_eval_from_hdf5.py` (docs/benchmarks.md#perturbation-test),
 * around any classifier and independent of where the images and maps come from.
 *
 * Per batch: classify the normalised images; rank the pixels of each map (negated for the negative test), and for
 * each step s remove the k = ⌊H·W·s⌋ highest-ranked pixels (set to 0 in all channels of a fresh copy of the [0, 1]
 * image), normalise, classify again. A hit is argmax == label. The data-set score is the area under "accuracy vs.
 * fraction removed" (`aucPercent`), which the reference leaves to the reader (upstream issue #31).
 *
 * Exactness: with `ties: 'torch'` the removed pixel sets are torch 1.13 CPU's `topk` sets, ties included
 * (`metrics/topk.ts`). Probabilities are a float64 softmax of the float32 logits (torch computes them in float32);
 * dissimilarities and probability/logit differences therefore agree with the reference's `.npy` files to about 1e-6,
 * not bit for bit. Hits and AUCs are exact given the same logits' argmax.
 */

import { stableRanking, topkIndicesTorchWithTie } from '../metrics/topk.js';

/** The fractions of pixels removed (`--scale per`). */
export const PERTURBATION_STEPS: readonly number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/**
 * `int(base_size * step)` of the reference, in float64: 5017, 10035, 15052, 20070, 25088, 30105, 35123, 40140, 45158
 * for 224·224 pixels and `PERTURBATION_STEPS`.
 */
export function pixelsToRemove(numPixels: number, step: number): number {
  return Math.trunc(numPixels * step);
}

/**
 * How equal map values at the k-th place are broken. 'torch': exactly torch 1.13 CPU `topk` (reproduces the official
 * numbers); 'stable': value descending, then ascending pixel index (a deterministic, implementation-independent
 * alternative; the golden README reports its numbers as "stable order").
 */
export type TieRule = 'torch' | 'stable';

export interface PerturbOptions {
  /** Negative perturbation (`--neg`): rank −vis, i.e. remove the least relevant pixels first. */
  negative: boolean;
  /** Default 'torch'. */
  ties?: TieRule;
  /**
   * The classifier: a normalised batch [B, C, H, W] (float32, C order) → logits [B, classes]. May be async
   * (e.g. a tfjs `data()` read).
   */
  classify: (normalisedBatch: Float32Array, batch: number) => Float32Array | Promise<Float32Array>;
  /** Normalisation of one [C, H, W] image in [0, 1] (e.g. `normalizeCHW(chw, mean, std)`); returns a new array. */
  normalize: (chw: Float32Array) => Float32Array;
  /** Ground-truth label per image; its length is the batch size. */
  labels: Int32Array | readonly number[];
  /** Image channels (default 3). */
  channels?: number;
  /** Fractions removed (default `PERTURBATION_STEPS`). */
  steps?: readonly number[];
  /** Keep every forward's logits in the results (default false). */
  keepLogits?: boolean;
  /**
   * The logits of the unperturbed batch, [B, classes], when the caller already has them (the same images
   * under another map or setting): the clean forward is then skipped. The classifier's logits of an image do
   * not depend on the batch it is in, so the results are those of a fresh clean forward.
   */
  cleanLogits?: Float32Array;
}

export interface PerturbationStepResult {
  /** The fraction s. */
  step: number;
  /** k = ⌊H·W·s⌋. */
  pixelsRemoved: number;
  /** argmax == label after the removal (`perturbations_hits`). */
  hit: boolean;
  /** max softmax − unperturbed max softmax, whatever classes they belong to (`perturbations_prob_diff`). */
  probDiff: number;
  /** max logit − unperturbed max logit (`perturbations_logit_diff`). */
  logitDiff: number;
  /** ln(p_label / p_second) after the removal (`perturbations_dissimilarities`). */
  dissimilarity: number;
  /** The k-th ranked map value also occurs outside the top k, so the removed set depends on the tie rule. */
  boundaryTie: boolean;
}

export interface PerturbationImageResult {
  label: number;
  /** Unperturbed argmax (first maximum). */
  prediction: number;
  /** Unperturbed argmax == label (`model_hits`). */
  modelHit: boolean;
  /**
   * ln(p_label / p_second) on the unperturbed image (`model_dissimilarities`), p_second = the second-largest
   * probability over all classes (so 0 when the label is the runner-up, negative when it is further down).
   */
  modelDissimilarity: number;
  steps: PerturbationStepResult[];
  /** Number of steps with a boundary tie. */
  boundaryTieSteps: number;
  /** With `keepLogits`: the logits of every forward, [0] unperturbed, then one per step. */
  logits?: Float32Array[];
}

function sameValue(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/** Statistics of one logit row, the way the reference reads them. */
interface RowStats {
  argmax: number;
  maxLogit: number;
  maxProb: number;
  dissimilarity: number;
}

/**
 * Softmax in float64 of a float32 logit row; argmax (first maximum, as torch's `max`), max logit, max probability and
 * ln(p_label / p_second) with p_second the second-largest probability (`probs.topk(2)[0][:, 1]`).
 */
function rowStats(logits: Float32Array, offset: number, classes: number, label: number): RowStats {
  let argmax = 0;
  let maxLogit = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < classes; c++) {
    const z = logits[offset + c]!;
    if (z > maxLogit) {
      maxLogit = z;
      argmax = c;
    }
  }
  let sum = 0;
  const p = new Float64Array(classes);
  for (let c = 0; c < classes; c++) sum += p[c] = Math.exp(logits[offset + c]! - maxLogit);
  let first = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < classes; c++) {
    const q = (p[c] = p[c]! / sum);
    if (q > first) {
      second = first;
      first = q;
    } else if (q > second) second = q;
  }
  if (!(label >= 0 && label < classes)) throw new RangeError(`label ${label} is outside [0, ${classes})`);
  return { argmax, maxLogit, maxProb: first, dissimilarity: Math.log(p[label]! / second) };
}

/**
 * The perturbation test of one batch. `images`: [B, C, H, W] in [0, 1] (un-normalised, C order); `vis`: [B, H·W]
 * relevance maps (any scale; only the ranking matters). B is `opts.labels.length`. Runs 1 + steps forwards of the
 * whole batch (steps with `cleanLogits`).
 */
export async function perturbBatch(
  images: Float32Array,
  vis: Float32Array,
  opts: PerturbOptions,
): Promise<PerturbationImageResult[]> {
  const B = opts.labels.length;
  const C = opts.channels ?? 3;
  const steps = opts.steps ?? PERTURBATION_STEPS;
  const ties = opts.ties ?? 'torch';
  if (B === 0) return [];
  if (vis.length % B !== 0) throw new RangeError(`vis has ${vis.length} values, not a multiple of the batch ${B}`);
  const P = vis.length / B;
  if (images.length !== B * C * P) {
    throw new RangeError(
      `images need ${B}×${C}×${P} = ${B * C * P} values (from vis and labels), got ${images.length}`,
    );
  }
  const plane = C * P;
  const labels = Array.from(opts.labels, Number);

  const forward = async (batch: Float32Array[]): Promise<{ logits: Float32Array; classes: number }> => {
    const input = new Float32Array(B * plane);
    batch.forEach((chw, i) => {
      const norm = opts.normalize(chw);
      if (norm.length !== plane) throw new RangeError(`normalize returned ${norm.length} values, expected ${plane}`);
      input.set(norm, i * plane);
    });
    const logits = await opts.classify(input, B);
    if (logits.length === 0 || logits.length % B !== 0) {
      throw new RangeError(`classify returned ${logits.length} logits for a batch of ${B}`);
    }
    return { logits, classes: logits.length / B };
  };

  const clean = opts.cleanLogits
    ? { logits: opts.cleanLogits, classes: opts.cleanLogits.length / B }
    : await forward(labels.map((_, i) => images.subarray(i * plane, (i + 1) * plane)));
  if (!Number.isInteger(clean.classes) || clean.classes < 1)
    throw new RangeError(`cleanLogits has ${clean.logits.length} values, not a multiple of the batch ${B}`);
  const cleanStats = labels.map((label, i) => rowStats(clean.logits, i * clean.classes, clean.classes, label));
  const results: PerturbationImageResult[] = labels.map((label, i) => {
    const s = cleanStats[i]!;
    return {
      label,
      prediction: s.argmax,
      modelHit: s.argmax === label,
      modelDissimilarity: s.dissimilarity,
      steps: [],
      boundaryTieSteps: 0,
      ...(opts.keepLogits ? { logits: [clean.logits.slice(i * clean.classes, (i + 1) * clean.classes)] } : {}),
    };
  });

  // The ranked values per image: −vis for the negative test (torch.topk(-vis)).
  const ranked = labels.map((_, i) => {
    const v = vis.slice(i * P, (i + 1) * P);
    if (opts.negative) for (let j = 0; j < P; j++) v[j] = -v[j]!;
    return v;
  });
  const stable = ties === 'stable' ? ranked.map((v) => stableRanking(v)) : undefined;

  for (const step of steps) {
    const k = pixelsToRemove(P, step);
    const tied: boolean[] = [];
    const batch = ranked.map((v, i) => {
      let idx: Uint32Array;
      if (stable) {
        const order = stable[i]!;
        idx = order.subarray(0, k);
        tied.push(k > 0 && k < P && sameValue(v[order[k - 1]!]!, v[order[k]!]!));
      } else {
        const sel = topkIndicesTorchWithTie(v, k);
        idx = sel.indices;
        tied.push(sel.tie.tied);
      }
      const img = images.slice(i * plane, (i + 1) * plane);
      for (const p of idx) for (let c = 0; c < C; c++) img[c * P + p] = 0;
      return img;
    });
    const out = await forward(batch);
    results.forEach((r, i) => {
      const s = rowStats(out.logits, i * out.classes, out.classes, r.label);
      const c0 = cleanStats[i]!;
      r.steps.push({
        step,
        pixelsRemoved: k,
        hit: s.argmax === r.label,
        probDiff: s.maxProb - c0.maxProb,
        logitDiff: s.maxLogit - c0.maxLogit,
        dissimilarity: s.dissimilarity,
        boundaryTie: tied[i]!,
      });
      if (tied[i]) r.boundaryTieSteps++;
      r.logits?.push(out.logits.slice(i * out.classes, (i + 1) * out.classes));
    });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------------
// AUC
// ---------------------------------------------------------------------------------------------------------

/** numpy's pairwise summation of a float64 vector (`add.reduce` on a contiguous array, numpy 1.24). */
function numpyPairwiseSum(a: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= 128) {
    const r = a.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = r[j]! + a[start + i + j]!;
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.trunc(n / 2);
  n2 -= n2 % 8;
  return numpyPairwiseSum(a, start, n2) + numpyPairwiseSum(a, start + n2, n - n2);
}

/**
 * 100 · `numpy.trapz(y, x)` with x = [0, ...steps] and y = `accuracies` (unperturbed first, then one per step), computed
 * as numpy 1.24 does (`(diff(x) * (y[1:] + y[:-1]) / 2.0).sum()`, pairwise sum), so it equals the reference's value
 * bit for bit. For the paper's protocol it is 100 · 0.1 · (y0/2 + y1 + … + y8 + y9/2), at most 90.
 */
export function aucPercent(accuracies: readonly number[], steps: readonly number[] = PERTURBATION_STEPS): number {
  if (accuracies.length !== steps.length + 1) {
    throw new RangeError(
      `need ${steps.length + 1} accuracies (unperturbed, then one per step), got ${accuracies.length}`,
    );
  }
  const x = [0, ...steps];
  const terms = accuracies.slice(1).map((y1, i) => ((x[i + 1]! - x[i]!) * (y1 + accuracies[i]!)) / 2.0);
  return 100 * (0 + numpyPairwiseSum(terms, 0, terms.length));
}

/** The serialised form of a `PerturbationAccumulator` (checkpoints, shards). */
export interface PerturbationAccumulatorState {
  steps: number[];
  images: number;
  modelHits: number;
  stepHits: number[];
  /** (image, step) pairs with a boundary tie at the k-th place. */
  boundaryTieSteps: number;
}

/** Sums hits per step over batches (and shards); gives accuracy per step and the AUC. */
export class PerturbationAccumulator {
  readonly steps: readonly number[];
  images = 0;
  modelHits = 0;
  stepHits: number[];
  boundaryTieSteps = 0;

  constructor(steps: readonly number[] = PERTURBATION_STEPS) {
    this.steps = [...steps];
    this.stepHits = steps.map(() => 0);
  }

  add(results: readonly PerturbationImageResult[]): this {
    for (const r of results) {
      if (r.steps.length !== this.steps.length || r.steps.some((s, i) => s.step !== this.steps[i])) {
        throw new RangeError(`result steps [${r.steps.map((s) => s.step)}] differ from [${this.steps}]`);
      }
      this.images++;
      if (r.modelHit) this.modelHits++;
      r.steps.forEach((s, i) => {
        if (s.hit) this.stepHits[i]!++;
      });
      this.boundaryTieSteps += r.boundaryTieSteps;
    }
    return this;
  }

  merge(other: PerturbationAccumulator | PerturbationAccumulatorState): this {
    if (other.steps.length !== this.steps.length || other.steps.some((s, i) => s !== this.steps[i])) {
      throw new RangeError(`cannot merge perturbation results of steps [${other.steps}] into [${this.steps}]`);
    }
    this.images += other.images;
    this.modelHits += other.modelHits;
    other.stepHits.forEach((h, i) => {
      this.stepHits[i]! += h;
    });
    this.boundaryTieSteps += other.boundaryTieSteps;
    return this;
  }

  /** Hit counts: unperturbed, then one per step (the README's c0 … c9). */
  counts(): number[] {
    return [this.modelHits, ...this.stepHits];
  }

  /** Accuracies (count / images, as numpy's mean of 0/1 values): unperturbed, then one per step. */
  accuracies(): number[] {
    if (this.images === 0) throw new RangeError('no images accumulated');
    return this.counts().map((c) => c / this.images);
  }

  /** The AUC in percent (`aucPercent` of `accuracies()`). */
  auc(): number {
    return aucPercent(this.accuracies(), this.steps);
  }

  toJSON(): PerturbationAccumulatorState {
    return {
      steps: [...this.steps],
      images: this.images,
      modelHits: this.modelHits,
      stepHits: [...this.stepHits],
      boundaryTieSteps: this.boundaryTieSteps,
    };
  }

  static fromJSON(state: PerturbationAccumulatorState): PerturbationAccumulator {
    const ok =
      Array.isArray(state.steps) &&
      Array.isArray(state.stepHits) &&
      state.stepHits.length === state.steps.length &&
      [state.images, state.modelHits, state.boundaryTieSteps, ...state.stepHits].every(
        (v) => Number.isInteger(v) && v >= 0,
      );
    if (!ok) throw new TypeError('not a perturbation accumulator state');
    return new PerturbationAccumulator(state.steps).merge(state);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Metric metadata
// ---------------------------------------------------------------------------------------------------------

export interface PerturbationMetricInfo {
  key: 'negativeAUC' | 'positiveAUC';
  label: string;
  /** Which test: negative removes the least relevant pixels first. */
  negative: boolean;
  unit: 'percent';
  direction: 'higher' | 'lower';
  reduction: 'accuracy over images per step, then trapezoid';
  inPaper: boolean;
  description: string;
}

/** The perturbation benchmark's metrics, described for reports and regression checks (Quantus-style). */
export const PERTURBATION_METRICS: readonly PerturbationMetricInfo[] = [
  {
    key: 'negativeAUC',
    label: 'negative perturbation AUC',
    negative: true,
    unit: 'percent',
    direction: 'higher',
    reduction: 'accuracy over images per step, then trapezoid',
    inPaper: true,
    description:
      'area under top-1 accuracy vs. fraction of pixels removed (0, 0.1, …, 0.9), least relevant pixels removed first',
  },
  {
    key: 'positiveAUC',
    label: 'positive perturbation AUC',
    negative: false,
    unit: 'percent',
    direction: 'lower',
    reduction: 'accuracy over images per step, then trapezoid',
    inPaper: true,
    description:
      'area under top-1 accuracy vs. fraction of pixels removed (0, 0.1, …, 0.9), most relevant pixels removed first',
  },
];
