import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { normalizeCHW } from '../data/image.js';
import type { BackendChoice } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { resultsInOrder, siblingModule, WorkerPool } from '../engine/worker-pool.js';
import { type ExplanationReader, type ExplanationRows, readExplanations } from '../formats/expl-hdf5.js';
import { FileFormatError } from '../formats/host-tensor.js';
import type { ModelSpec } from '../models/load.js';
import { onnxClassifierFor } from '../models/onnx-vit.js';
import type { VisionTransformer } from '../models/vit.js';
import { writeLineChart } from '../reports/plots.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/files.js';
import { stopPoint, watchStop } from '../util/interrupt.js';
import { Progress } from '../util/progress.js';
import {
  PERTURBATION_METRICS,
  PERTURBATION_STEPS,
  PerturbationAccumulator,
  type PerturbationAccumulatorState,
  perturbBatch,
  pixelsToRemove,
  type TieRule,
} from './perturbation-core.js';
import { beginRun, type RunControl, type RunIdentity, readCheckpoint, writeCheckpoint } from './run-dir.js';
import { type Shard, ShardError, type ShardRun, shardIndices } from './shards.js';

/**
 * The positive/negative perturbation test (docs/benchmarks.md#perturbation-test) over explanation files written by
 * `bench visualize` or by the official `generate_visualizations.py`: per file (one method and vis class)
 * and per setting, the classifier's top-1 accuracy against the ground-truth label after removing
 * 10 %, 20 %, … 90 % of the pixels, highest relevance first (positive) or lowest first (negative),
 * and the AUC as the authors compute it. Unlike the official script, both settings work.
 */
export type Setting = 'negative' | 'positive';

/**
 * What runs the classifier passes: the model on the tfjs backend in use, or onnxruntime-node (CPU; the same
 * weights as an ONNX graph, src/models/onnx-vit.ts). results/speed/README.md has the measurement behind the default.
 */
export type ClassifierEngine = 'tfjs' | 'onnxruntime';

export interface VisInput {
  file: string;
  /** Method name: from the file's attributes, else its folder (<method>/<vis-class>/[not_ablation/]results.hdf5). */
  method: string;
  visClass: string;
}

export interface PerturbRunOptions extends RunControl {
  model: VisionTransformer;
  inputs: readonly VisInput[];
  settings: readonly Setting[];
  ties: TieRule;
  /** Images per classifier batch: the unperturbed copies, then each step's perturbed copies, as one batch each. */
  batchSize: number;
  /** Process only this shard's rows of every file (row position p with p mod N = K); `bench merge` joins them. */
  shard?: Shard;
  /** The classifier passes' engine (default 'tfjs'). */
  engine?: ClassifierEngine;
  /** Compute batches on this many worker threads (each loads the model from `spec` on `backend`). */
  parallel?: { workers: number; backend: BackendChoice; spec: ModelSpec };
  /** Called after each batch is checkpointed, with the (file, setting) rows done so far. */
  onBatchDone?: (rowsDone: number) => void;
}

export interface SettingResult {
  /** Unperturbed accuracy, then after each step (10 values). */
  accuracy: number[];
  auc: number;
  /** Hit counts behind `accuracy`. */
  counts: number[];
  images: number;
  /** (image, step) pairs where the k-th value was tied across the cut, so the tie rule mattered. */
  boundaryTieSteps: number;
}

export interface PerturbSummary {
  benchmark: 'perturbation';
  model: string;
  ties: TieRule;
  steps: number[];
  pixelsRemoved: number[];
  metrics: typeof PERTURBATION_METRICS;
  /** results[method][visClass][setting] */
  results: Record<string, Record<string, Partial<Record<Setting, SettingResult>>>>;
  files: Record<string, string>;
  /** The shard this run covers (null: every row, or merged shards). */
  shard: Shard | null;
}

/** What a visualisation file holds: method and vis class, from its attributes or its path. */
export async function describeVisFile(file: string): Promise<VisInput> {
  const r = await readExplanations(file);
  try {
    const fromAttrs = typeof r.attrs.method === 'string' && typeof r.attrs.vis_class === 'string';
    if (fromAttrs) return { file, method: r.attrs.method as string, visClass: r.attrs.vis_class as string };
    // The official layout: visualizations/<method>/<vis_class>/<ablation_fold>/results.hdf5.
    let dir = dirname(file);
    if (/ablation$/.test(basename(dir))) dir = dirname(dir);
    return { file, method: basename(dirname(dir)), visClass: basename(dir) };
  } finally {
    r.close();
  }
}

/**
 * The checkpoint. `nextRow`: how many of this run's rows of the file (the shard's, in order) are done; the files
 * of one group (same row count) and every setting advance together, one batch at a time.
 */
interface PerturbState {
  runs: Record<string, { nextRow: number; acc: PerturbationAccumulatorState }>;
}

const keyOf = (i: VisInput, s: Setting) => `${i.method}/${i.visClass}/${s}`;

/** What a worker thread needs to compute batches itself (structured-cloneable). */
export interface PerturbWorkerSetup {
  backend: BackendChoice;
  spec: ModelSpec;
  inputs: VisInput[];
  settings: Setting[];
  ties: TieRule;
  engine: ClassifierEngine;
}

/** One unit of work: rows (positions in the files) of a group of files with as many rows each. */
export interface PerturbItem {
  /** Indices into the run's inputs. */
  files: number[];
  /** Row positions, ascending. */
  rows: number[];
}

/** Per file of the item, then per setting (files × settings, in that order): the batch's hit counts. */
export interface PerturbItemResult {
  accs: PerturbationAccumulatorState[];
}

/** [start, count] runs of consecutive positions (a shard's rows are every N-th, so usually single rows). */
function contiguousRuns(rows: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === r) last[1]++;
    else out.push([r, 1]);
  }
  return out;
}

function readRowsAt(r: ExplanationReader, rows: readonly number[]): ExplanationRows {
  const parts = contiguousRuns(rows).map(([start, count]) => r.readRows(start, count));
  if (parts.length === 1) return parts[0]!;
  const cat = (xs: Float32Array[]) => {
    const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of xs) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  return {
    vis: cat(parts.map((p) => p.vis)),
    image: cat(parts.map((p) => p.image)),
    target: Int32Array.from(parts.flatMap((p) => [...p.target])),
    index: parts.flatMap((p) => p.index),
  };
}

const sameBytes = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function checkLabels(file: string, labels: ArrayLike<number>, model: VisionTransformer): void {
  const c = model.config;
  const bad = Array.prototype.find.call(labels, (t: number) => !(t >= 0 && t < c.num_classes)) as number | undefined;
  if (bad !== undefined) {
    throw new FileFormatError(
      file,
      `holds label ${bad}, but the model '${c.name}' has ${c.num_classes} classes (a file written for another data set or model?)`,
    );
  }
}

/**
 * The classifier of the perturbation test: a normalised batch [B, C, H, W] → logits [B, classes], on the tfjs backend
 * in use or on onnxruntime-node (its session made at the first call). On tfjs, the logits come without the forward
 * trace (model.logits: a batch needs one block's memory, not twelve) and are read asynchronously (the webgpu backend
 * has no synchronous read in Node).
 */
export function perturbationClassifier(
  model: VisionTransformer,
  engine: ClassifierEngine,
): (batch: Float32Array, b: number) => Promise<Float32Array> {
  const c = model.config;
  if (engine === 'onnxruntime') {
    let ort: ReturnType<typeof onnxClassifierFor> | undefined;
    return async (batch, b) => {
      ort ??= onnxClassifierFor(model);
      return (await ort)(batch, b);
    };
  }
  return async (batch, b) => {
    const logits = tf.tidy(() =>
      model.logits(tf.tensor4d(batch, [b, c.in_chans, c.img_size, c.img_size]), c.final_norm_eps),
    );
    try {
      return (await logits.data()) as Float32Array;
    } finally {
      logits.dispose();
    }
  };
}

/**
 * The computation of one item, the same on the main thread and on a worker. The images and labels are read
 * once per file, and the unperturbed pass runs once per batch of images: every setting shares it, and so does
 * every further file of the item that holds the same images and labels (the method × vis-class files of one
 * `bench visualize` run do). Logits do not depend on the batch an image is in, so sharing changes no number.
 */
export function perturbItemEvaluator(
  model: VisionTransformer,
  run: { inputs: readonly VisInput[]; settings: readonly Setting[]; ties: TieRule },
  reader: (file: string) => ExplanationReader,
  engine: ClassifierEngine = 'tfjs',
): (item: PerturbItem) => Promise<PerturbItemResult> {
  const c = model.config;
  const classify = perturbationClassifier(model, engine);
  const normalize = (chw: Float32Array) => normalizeCHW(chw, c.mean, c.std);
  const cleanPass = (images: Float32Array, b: number): Promise<Float32Array> => {
    const plane = images.length / b;
    const input = new Float32Array(images.length);
    for (let i = 0; i < b; i++) input.set(normalize(images.subarray(i * plane, (i + 1) * plane)), i * plane);
    return classify(input, b);
  };
  return async (item) => {
    const accs: PerturbationAccumulatorState[] = [];
    const seen: { image: Float32Array; target: Int32Array; logits: Float32Array }[] = [];
    for (const fi of item.files) {
      const input = run.inputs[fi]!;
      const rows = readRowsAt(reader(input.file), item.rows);
      checkLabels(input.file, rows.target, model);
      let clean = seen.find((s) => sameBytes(s.target, rows.target) && sameBytes(s.image, rows.image));
      if (!clean) {
        clean = { image: rows.image, target: rows.target, logits: await cleanPass(rows.image, rows.target.length) };
        seen.push(clean);
      }
      for (const setting of run.settings) {
        const results = await perturbBatch(rows.image, rows.vis, {
          negative: setting === 'negative',
          ties: run.ties,
          classify,
          normalize,
          labels: rows.target,
          cleanLogits: clean.logits,
        });
        accs.push(new PerturbationAccumulator().add(results).toJSON());
      }
    }
    return { accs };
  };
}

/** Files grouped by row count (in input order): the files of a group are read batch by batch together. */
function groupInputs(inputs: readonly VisInput[], rowsOf: (i: VisInput) => number): number[][] {
  const groups = new Map<number, number[]>();
  inputs.forEach((input, i) => {
    const n = rowsOf(input);
    const g = groups.get(n);
    if (g) g.push(i);
    else groups.set(n, [i]);
  });
  return [...groups.values()];
}

export async function runPerturbation(opts: PerturbRunOptions): Promise<PerturbSummary> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { model, outDir } = opts;
  const c = model.config;
  const statePath = join(outDir, 'state.json');
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
    throw new RangeError(`batch size must be a positive integer, got ${opts.batchSize}`);
  // Open every input first: a bad file fails before anything is written.
  const readers = new Map<string, ExplanationReader>();
  try {
    for (const input of opts.inputs) {
      const r = await readExplanations(input.file);
      readers.set(input.file, r);
      if (r.height !== c.img_size || r.width !== c.img_size) {
        throw new FileFormatError(
          input.file,
          `maps are ${r.height}×${r.width}, but the model '${c.name}' takes ${c.img_size}×${c.img_size} images (a file written for another model?)`,
        );
      }
    }
    const rowsOf = (i: VisInput) => Math.min(readers.get(i.file)!.rows, opts.limit ?? Number.POSITIVE_INFINITY);
    for (const input of opts.inputs) {
      checkLabels(input.file, readers.get(input.file)!.readTargets().subarray(0, rowsOf(input)), model);
      if (opts.shard && rowsOf(input) <= opts.shard.index)
        throw new ShardError(
          `shard ${opts.shard.index}/${opts.shard.count} has no rows of ${input.file} (${rowsOf(input)} rows): use at most ${rowsOf(input)} shards`,
        );
    }
    const fresh = (): PerturbState => {
      const st: PerturbState = { runs: {} };
      for (const i of opts.inputs)
        for (const s of opts.settings)
          st.runs[keyOf(i, s)] = { nextRow: 0, acc: new PerturbationAccumulator().toJSON() };
      return st;
    };
    let state: PerturbState;
    if (beginRun(outDir, opts.identity, opts.resume, 'state.json')) {
      // The accumulated curves live only in state.json: a damaged one means starting again.
      const cp = readCheckpoint<PerturbState>(statePath);
      const keys = opts.inputs.flatMap((i) => opts.settings.map((s) => keyOf(i, s)));
      const fits =
        'value' in cp && keys.every((k) => Number.isInteger(cp.value.runs?.[k]?.nextRow) && cp.value.runs[k]!.acc);
      if ('value' in cp && fits) {
        state = cp.value;
        log(`resuming ${outDir}`);
      } else {
        log(
          `warning: ${statePath}: ${'value' in cp ? 'damaged: not the checkpoint of this run' : cp.problem}; the perturbation curves are kept only there, so the run starts again from the first row`,
        );
        state = fresh();
        writeCheckpoint(statePath, state);
      }
    } else {
      state = fresh();
      writeCheckpoint(statePath, state);
    }
    const groups = groupInputs(opts.inputs, rowsOf);
    const keysOf = (files: readonly number[]) =>
      files.flatMap((fi) => opts.settings.map((s) => keyOf(opts.inputs[fi]!, s)));
    const items: PerturbItem[] = [];
    const workers = Math.max(1, opts.parallel?.workers ?? 1);
    let total = 0;
    let processed = 0;
    for (const files of groups) {
      const todo = shardIndices(rowsOf(opts.inputs[files[0]!]!), opts.shard);
      const keys = keysOf(files);
      const done = state.runs[keys[0]!]!.nextRow;
      if (keys.some((k) => state.runs[k]!.nextRow !== done) || done > todo.length)
        throw new FileFormatError(statePath, 'inconsistent checkpoint (files of one batch at different rows)');
      total += todo.length * keys.length;
      processed += done * keys.length;
      // With N workers, a group too small to give each worker a full batch is split evenly among them.
      const size = Math.min(opts.batchSize, Math.max(1, Math.ceil((todo.length - done) / workers)));
      for (let p = done; p < todo.length; p += size) items.push({ files, rows: todo.slice(p, p + size) });
    }
    const progress = new Progress('perturb', total, processed, opts.quiet);
    const evaluate = perturbItemEvaluator(model, opts, (f) => readers.get(f)!, opts.engine);
    const par = opts.parallel;
    const pool = par
      ? await WorkerPool.startFor<PerturbWorkerSetup, PerturbItem, PerturbItemResult>(
          siblingModule('./perturbation-worker', import.meta.url),
          par.workers,
          items.length,
          {
            backend: par.backend,
            spec: par.spec,
            inputs: [...opts.inputs],
            settings: [...opts.settings],
            ties: opts.ties,
            engine: opts.engine ?? 'tfjs',
          },
        )
      : undefined;
    const unwatch = watchStop();
    try {
      // Batches are computed here or on worker threads; either way they are consumed (accumulated and
      // checkpointed, the counts and the rows done in one atomic write) in the data set's order.
      let k = 0;
      for await (const res of resultsInOrder(items, pool, evaluate)) {
        const item = items[k++]!;
        const keys = keysOf(item.files);
        keys.forEach((key, j) => {
          const run = state.runs[key]!;
          run.acc = PerturbationAccumulator.fromJSON(run.acc).merge(res.accs[j]!).toJSON();
          run.nextRow += item.rows.length;
        });
        writeCheckpoint(statePath, state);
        processed += item.rows.length * keys.length;
        opts.onBatchDone?.(processed);
        const shown = PerturbationAccumulator.fromJSON(state.runs[keys[0]!]!.acc);
        progress.update(processed, `${keys[0]}: AUC so far ${shown.auc().toFixed(2)}`);
        await stopPoint(processed, total);
      }
    } finally {
      unwatch();
      await pool?.close();
    }
    progress.stop();
    const summary = summarize(
      { inputs: opts.inputs, settings: opts.settings, ties: opts.ties, model: c.name, shard: opts.shard ?? null },
      state,
      c.img_size * c.img_size,
    );
    await writeOutputs(outDir, summary);
    return summary;
  } finally {
    for (const r of readers.values()) r.close();
  }
}

interface SummaryRun {
  inputs: readonly VisInput[];
  settings: readonly Setting[];
  ties: TieRule;
  model: string;
  shard: Shard | null;
}

function summarize(run: SummaryRun, state: PerturbState, numPixels: number): PerturbSummary {
  const results: PerturbSummary['results'] = {};
  const files: Record<string, string> = {};
  for (const input of run.inputs) {
    files[`${input.method}/${input.visClass}`] = input.file;
    for (const s of run.settings) {
      const acc = PerturbationAccumulator.fromJSON(state.runs[keyOf(input, s)]!.acc);
      const byVis = (results[input.method] ??= {});
      const bySetting = (byVis[input.visClass] ??= {});
      bySetting[s] = {
        accuracy: acc.accuracies(),
        auc: acc.auc(),
        counts: acc.counts(),
        images: acc.images,
        boundaryTieSteps: acc.boundaryTieSteps,
      };
    }
  }
  return {
    benchmark: 'perturbation',
    model: run.model,
    ties: run.ties,
    steps: [0, ...PERTURBATION_STEPS],
    pixelsRemoved: [0, ...PERTURBATION_STEPS.map((s) => pixelsToRemove(numPixels, s))],
    metrics: PERTURBATION_METRICS,
    results,
    files,
    shard: run.shard,
  };
}

/**
 * Joins finished shards into the run one machine would have made: the hit counts are integers, so their sums
 * are the unsharded run's counts exactly, and the summary, steps.csv, plots, run.json (without the shard) and the
 * checkpoint are the files an unsharded run writes.
 */
export async function mergePerturbationShards(
  outDir: string,
  shards: readonly ShardRun[],
  identity: RunIdentity,
): Promise<PerturbSummary> {
  const inputs = (identity.files as VisInput[]).map(({ file, method, visClass }) => ({ file, method, visClass }));
  const settings = identity.settings as Setting[];
  const model = identity.model as { name: string; img_size: number };
  const state: PerturbState = { runs: {} };
  for (const i of inputs)
    for (const s of settings) state.runs[keyOf(i, s)] = { nextRow: 0, acc: new PerturbationAccumulator().toJSON() };
  for (const r of shards) {
    const file = join(r.dir, 'state.json');
    let part: PerturbState;
    try {
      part = JSON.parse(readFileSync(file, 'utf8')) as PerturbState;
    } catch (e) {
      throw new FileFormatError(file, `unreadable checkpoint (${e instanceof Error ? e.message : e})`);
    }
    for (const [key, run] of Object.entries(state.runs)) {
      const p = part.runs?.[key];
      if (!p) throw new FileFormatError(file, `no counts for ${key}`);
      run.acc = PerturbationAccumulator.fromJSON(run.acc).merge(PerturbationAccumulator.fromJSON(p.acc)).toJSON();
      run.nextRow += p.nextRow;
    }
  }
  writeJsonAtomic(join(outDir, 'run.json'), identity);
  writeCheckpoint(join(outDir, 'state.json'), state);
  const summary = summarize(
    { inputs, settings, ties: identity.ties as TieRule, model: model.name, shard: null },
    state,
    model.img_size * model.img_size,
  );
  await writeOutputs(outDir, summary);
  return summary;
}

/** The `--json` form: { <method>: { <top|target>: { negative: { accuracy, auc }, positive: { … } } } }. */
export function perturbJson(
  s: PerturbSummary,
): Record<string, Record<string, Partial<Record<Setting, { accuracy: number[]; auc: number }>>>> {
  const out: ReturnType<typeof perturbJson> = {};
  for (const [m, byVis] of Object.entries(s.results)) {
    for (const [v, bySetting] of Object.entries(byVis)) {
      for (const [setting, r] of Object.entries(bySetting) as [Setting, SettingResult][]) {
        ((out[m] ??= {})[v] ??= {})[setting] = { accuracy: r.accuracy, auc: r.auc };
      }
    }
  }
  return out;
}

async function writeOutputs(outDir: string, s: PerturbSummary): Promise<void> {
  writeJsonAtomic(join(outDir, 'summary.json'), s);
  const rows: (string | number)[][] = [];
  for (const [m, byVis] of Object.entries(s.results)) {
    for (const [v, bySetting] of Object.entries(byVis)) {
      for (const [setting, r] of Object.entries(bySetting) as [Setting, SettingResult][]) {
        r.accuracy.forEach((a, i) => {
          rows.push([m, v, setting, s.steps[i]!, s.pixelsRemoved[i]!, a, r.counts[i]!, r.images]);
        });
      }
    }
  }
  writeFileAtomic(
    join(outDir, 'steps.csv'),
    stringify(rows, {
      header: true,
      columns: ['method', 'vis_class', 'setting', 'fraction_removed', 'pixels_removed', 'accuracy', 'hits', 'images'],
    }),
  );
  const md = [
    '| method | vis class | negative AUC (higher is better) | positive AUC (lower is better) |',
    '|---|---|---|---|',
  ];
  for (const [m, byVis] of Object.entries(s.results)) {
    for (const [v, r] of Object.entries(byVis))
      md.push(`| ${m} | ${v} | ${r.negative?.auc.toFixed(2) ?? '–'} | ${r.positive?.auc.toFixed(2) ?? '–'} |`);
  }
  writeFileAtomic(
    join(outDir, 'summary.md'),
    `# Perturbation test: ${s.model}\n\nTies: ${s.ties}.\n\n${md.join('\n')}\n`,
  );
  await writePerturbationPlot(join(outDir, 'perturbation'), s);
}

/**
 * The accuracy-against-fraction-removed curves of a summary's methods (one panel per setting and vis class) as
 * `<base>.svg` and `<base>.png`; bench report draws them again for the methods it shows.
 */
export async function writePerturbationPlot(base: string, s: PerturbSummary): Promise<void> {
  const points: { x: number; y: number; series: string; panel: string }[] = [];
  for (const [m, byVis] of Object.entries(s.results))
    for (const [v, bySetting] of Object.entries(byVis))
      for (const [setting, r] of Object.entries(bySetting) as [Setting, SettingResult][])
        r.accuracy.forEach((a, i) => {
          points.push({ x: s.steps[i]!, y: a, series: m, panel: `${setting} perturbation, ${v} class` });
        });
  await writeLineChart(base, points, {
    title: `Perturbation test (${s.model})`,
    xTitle: 'fraction of pixels removed',
    yTitle: 'top-1 accuracy',
    yDomain: [0, 1],
  });
}
