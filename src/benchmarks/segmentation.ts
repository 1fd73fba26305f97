import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { normalizeCHWF64 } from '../data/image.js';
import { type GtsegsDataset, openGtsegs, preprocessSegItem } from '../datasets/gtsegs.js';
import type { BackendChoice } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { resultsInOrder, siblingModule, WorkerPool } from '../engine/worker-pool.js';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import { explain } from '../methods/explain.js';
import { pluginFiles } from '../methods/plugins.js';
import type { ExplanationMethod } from '../methods/types.js';
import {
  formatReferenceLines,
  type ImageSegStats,
  SEGMENTATION_METRICS,
  SegmentationAccumulator,
  type SegmentationAccumulatorJSON,
  type SegmentationResult,
  segmentImage,
} from '../metrics/segmentation.js';
import { forwardPrecision } from '../models/forward-precision.js';
import type { ModelSpec } from '../models/load.js';
import type { VisionTransformer } from '../models/vit.js';
import { overlayHeatmap, writePanelsPng } from '../reports/overlay.js';
import { appendFileChecked, writeFileAtomic, writeFileChecked, writeJsonAtomic } from '../util/files.js';
import { stopPoint, watchStop } from '../util/interrupt.js';
import { Progress } from '../util/progress.js';
import { beginRun, type RunControl, type RunIdentity, readCheckpoint, writeCheckpoint } from './run-dir.js';
import { type Shard, type ShardRun, shardIndices } from './shards.js';

/**
 * The ImageNet-segmentation benchmark (docs/benchmarks.md#imagenet-segmentation): for each image, every requested
 * method's map from one shared explanation pass, thresholded at its mean, scored against the mask; pixel accuracy
 * and mIoU from dataset-level counts, mAP as the mean of per-image pooled APs.
 *
 * Checkpointing: per_image.csv is appended as images finish, and state.json (accumulators, next image,
 * CSV length) is replaced atomically after each image. A resumed run truncates the CSV to the recorded
 * length and continues, so its outputs equal an uninterrupted run's.
 */
export interface SegRunOptions extends RunControl {
  model: VisionTransformer;
  dataFile: string;
  methods: readonly ExplanationMethod[];
  startLayer: number;
  saveImg?: number;
  /** Compute images on this many worker threads (each loads the model from `spec` on `backend`). */
  parallel?: { workers: number; backend: BackendChoice; spec: ModelSpec };
  /** Process only this shard's images (i mod N = K); `bench merge` joins the shards. */
  shard?: Shard;
  /** Called after each image is checkpointed (tests use it to simulate an interruption). */
  onImageDone?: (index: number) => void;
  /** Paper numbers to show beside ours (when the model is the paper's). */
  paper?: Record<string, { pixelAccuracy: number; mIoU: number; mAP: number }>;
}

export interface SegMethodSummary {
  /** Percent, like the paper. */
  pixelAccuracy: number;
  mIoU: number;
  mAP: number;
  iouBackground: number;
  iouForeground: number;
  /** Reference quirk (mean of per-row F1), percent; not a paper metric. */
  rowF1: number;
  images: number;
  constantMaps: number;
  /** Wall seconds of the shared explanation passes plus this method's metric computation. */
  seconds: number;
  referenceLines: string[];
}

export interface SegSummary {
  benchmark: 'segmentation';
  model: string;
  data: string;
  images: number;
  startLayer: number;
  secondsPerImage: number;
  metrics: typeof SEGMENTATION_METRICS;
  methods: Record<string, SegMethodSummary>;
  paper?: SegRunOptions['paper'];
  /** The shard this run covers (null: the whole data set, or merged shards). */
  shard: Shard | null;
}

interface SegState {
  /** How many of this run's images (the shard's, in order) are done. */
  nextIndex: number;
  csvBytes: number;
  /** SHA-256 of per_image.csv's first csvBytes bytes: a resumed run checks that the rows are still those. */
  csvSha256?: string;
  sharedSeconds: number;
  methods: Record<string, { acc: SegmentationAccumulatorJSON; seconds: number; constantMaps: number }>;
}

const CSV_COLUMNS = [
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
] as const;

const CSV_HEADER = stringify([], { header: true, columns: [...CSV_COLUMNS] });

function freshSegState(names: readonly string[]): SegState {
  return {
    nextIndex: 0,
    csvBytes: Buffer.byteLength(CSV_HEADER),
    sharedSeconds: 0,
    methods: Object.fromEntries(
      names.map((m) => [m, { acc: new SegmentationAccumulator().toJSON(), seconds: 0, constantMaps: 0 }]),
    ),
  };
}

function readCsvPrefix(file: string, bytes: number): Buffer {
  try {
    return readFileSync(file).subarray(0, bytes);
  } catch (e) {
    throw new FileFormatError(file, fsErrorReason(e));
  }
}

/**
 * The checkpoint of a resumed run. A damaged state.json (cut, garbled, changed: its checksum) is rebuilt from the
 * rows of per_image.csv, with a warning: every complete image in order, the rest recomputed. A sound state.json
 * whose per_image.csv rows are no longer the ones it counted (cut or changed: the CSV's checksum) is an error, as
 * those rows cannot be trusted.
 */
function resumeSegState(
  statePath: string,
  csvPath: string,
  names: readonly string[],
  todo: readonly number[],
  height: number,
  log: (s: string) => void,
): SegState {
  const cp = readCheckpoint<SegState>(statePath);
  const csv = existsSync(csvPath) ? readCsvPrefix(csvPath, Number.POSITIVE_INFINITY) : Buffer.alloc(0);
  if ('value' in cp && segStateFits(cp.value, names, todo.length)) {
    const s = cp.value;
    if (
      csv.length < s.csvBytes ||
      createHash('sha256').update(csv.subarray(0, s.csvBytes)).digest('hex') !== s.csvSha256
    ) {
      throw new FileFormatError(
        csvPath,
        `does not hold the rows its checkpoint ${statePath} counts (${s.nextIndex} images): cut or changed since they were written, so they cannot be trusted; start the run again with another --out`,
      );
    }
    return s;
  }
  const problem =
    'value' in cp ? 'damaged: not the checkpoint of this run (its methods or counts do not fit)' : cp.problem;
  const { state, images } = rebuildSegState(csv, names, todo, height);
  if (images === 0) writeFileChecked(csvPath, CSV_HEADER);
  log(
    `warning: ${statePath}: ${problem}; rebuilt from the ${images} complete images of per_image.csv (the rest is recomputed; the timings of the earlier part are lost, and the row-F1 quirk metric is summed from per-image means)`,
  );
  writeCheckpoint(statePath, state);
  return state;
}

function segStateFits(s: SegState, names: readonly string[], total: number): boolean {
  return (
    Number.isInteger(s.nextIndex) &&
    s.nextIndex >= 0 &&
    s.nextIndex <= total &&
    Number.isInteger(s.csvBytes) &&
    typeof s.csvSha256 === 'string' &&
    typeof s.methods === 'object' &&
    s.methods !== null &&
    names.every((m) => s.methods[m]?.acc !== undefined)
  );
}

/** One CSV line's fields (csv-stringify's quoting: "…" with "" for a quote), or undefined if malformed. */
function csvFields(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return undefined;
        v += line.slice(i, q);
        if (line[q + 1] === '"') {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
    } else {
      const e = line.indexOf(',', i);
      out.push(line.slice(i, e < 0 ? line.length : e));
      i = e < 0 ? line.length : e;
    }
    if (i >= line.length) return out;
    if (line[i] !== ',') return undefined;
    i++;
  }
}

/** A checkpoint from per_image.csv's rows: the complete images, in the run's order, that parse as written. */
function rebuildSegState(
  csv: Buffer,
  names: readonly string[],
  todo: readonly number[],
  height: number,
): { state: SegState; images: number } {
  const state = freshSegState(names);
  const accs = new Map(names.map((m) => [m, new SegmentationAccumulator()]));
  const text = csv.toString('utf8');
  if (!text.startsWith(CSV_HEADER)) return { state, images: 0 };
  let pos = CSV_HEADER.length;
  const count = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : Number.NaN);
  const real = (s: string | undefined) =>
    s === 'NaN' ? Number.NaN : s && /^-?[\d.eE+-]+$/.test(s) ? Number(s) : undefined;
  images: for (let p = 0; p < todo.length; p++) {
    const rows: { method: string; stats: ImageSegStats; constant: boolean }[] = [];
    let end = pos;
    for (const name of names) {
      const nl = text.indexOf('\n', end);
      if (nl < 0) break images;
      const f = csvFields(text.slice(end, nl));
      end = nl + 1;
      if (!f || f.length !== CSV_COLUMNS.length || count(f[0]) !== todo[p] || f[2] !== name) break images;
      const [threshold, ap, f1] = [real(f[4]), real(f[12]), real(f[13])];
      const ints = [5, 6, 7, 8, 9, 10, 11].map((k) => count(f[k]));
      if (threshold === undefined || ap === undefined || f1 === undefined || ints.some((v) => !Number.isInteger(v)))
        break images;
      if (!Number.isFinite(ap) || !Number.isFinite(f1) || (f[14] !== '0' && f[14] !== '1')) break images;
      rows.push({
        method: name,
        constant: f[14] === '1',
        stats: {
          threshold,
          fgPixels: ints[0]!,
          correct: ints[1]!,
          labeled: ints[2]!,
          inter: [ints[3]!, ints[4]!],
          union: [ints[5]!, ints[6]!],
          ap,
          rowF1Mean: f1,
          f1Rows: new Float64Array(height).fill(f1),
        } as ImageSegStats,
      });
    }
    for (const r of rows) {
      accs.get(r.method)!.add(r.stats);
      if (r.constant) state.methods[r.method]!.constantMaps++;
    }
    state.nextIndex++;
    pos = end;
  }
  for (const m of names) state.methods[m]!.acc = accs.get(m)!.toJSON();
  state.csvBytes = Buffer.byteLength(text.slice(0, pos));
  state.csvSha256 = createHash('sha256').update(csv.subarray(0, state.csvBytes)).digest('hex');
  return { state, images: state.nextIndex };
}

export async function runSegmentation(opts: SegRunOptions): Promise<SegSummary> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { model, methods, outDir } = opts;
  const c = model.config;
  // Open (and so validate) the data before anything is written.
  const ds = await openGtsegs(opts.dataFile, { warn: (w) => log(`warning: ${w}`) });
  try {
    const statePath = join(outDir, 'state.json');
    const csvPath = join(outDir, 'per_image.csv');
    const total = Math.min(ds.length, opts.limit ?? ds.length);
    const todo = shardIndices(total, opts.shard);
    const names = methods.map((m) => m.name);
    let state: SegState;
    let csvHash = createHash('sha256');
    if (beginRun(outDir, opts.identity, opts.resume, 'state.json')) {
      state = resumeSegState(statePath, csvPath, names, todo, c.img_size, log);
      csvHash = createHash('sha256').update(readCsvPrefix(csvPath, state.csvBytes));
      truncateSync(csvPath, state.csvBytes);
      log(`resuming ${outDir} at image ${state.nextIndex}`);
    } else {
      writeFileChecked(csvPath, CSV_HEADER);
      csvHash.update(CSV_HEADER);
      state = freshSegState(names);
      state.csvSha256 = csvHash.copy().digest('hex');
      writeCheckpoint(statePath, state);
    }
    const accs = new Map(methods.map((m) => [m.name, SegmentationAccumulator.fromJSON(state.methods[m.name]!.acc)]));
    const progress = new Progress('seg', todo.length, state.nextIndex, opts.quiet);
    const first = methods[0]!;
    const saveImg = opts.saveImg ?? 0;
    const pending = todo.slice(state.nextIndex).map((i) => ({ index: i, keepMaps: i < saveImg }));
    const par = opts.parallel;
    const pool = par
      ? await WorkerPool.startFor<SegWorkerSetup, SegWorkerItem, SegImageResult>(
          siblingModule('./segmentation-worker', import.meta.url),
          par.workers,
          pending.length,
          {
            backend: par.backend,
            spec: par.spec,
            dataFile: opts.dataFile,
            methods: names,
            plugins: pluginFiles(methods),
            startLayer: opts.startLayer,
          },
        )
      : undefined;
    const unwatch = watchStop();
    try {
      // Images are computed here or on worker threads; either way they are consumed (accumulated,
      // written, checkpointed) in data-set order, so every worker count gives the same files.
      const results = resultsInOrder(pending, pool, ({ index, keepMaps }) =>
        evaluateSegImage(model, ds, index, methods, opts.startLayer, keepMaps),
      );
      for await (const res of results) {
        const i = res.index;
        state.sharedSeconds += res.sharedSeconds;
        const rows: (string | number)[][] = [];
        for (const [k, m] of res.methods.entries()) {
          accs.get(m.method)!.add(m.stats);
          const ms = state.methods[m.method]!;
          ms.seconds += m.seconds;
          if (m.constant) ms.constantMaps++;
          rows.push([
            i,
            res.id,
            m.method,
            m.cls,
            m.stats.threshold,
            m.stats.fgPixels,
            m.stats.correct,
            m.stats.labeled,
            m.stats.inter[0],
            m.stats.inter[1],
            m.stats.union[0],
            m.stats.union[1],
            m.stats.ap,
            m.stats.rowF1Mean,
            m.constant ? 1 : 0,
          ]);
          if (k === 0 && m.constant)
            log(
              `warning: ${m.method}: constant map for image ${i}; scored as all background (AP 0.5), as the reference's NaN clean-up does`,
            );
        }
        if (res.panel)
          await saveOverlay(join(outDir, 'images', `${String(i).padStart(5, '0')}.png`), res.panel, res.methods);
        const chunk = stringify(rows);
        appendFileChecked(csvPath, chunk);
        csvHash.update(chunk);
        state.csvBytes += Buffer.byteLength(chunk);
        state.csvSha256 = csvHash.copy().digest('hex');
        state.nextIndex++;
        for (const name of names) state.methods[name]!.acc = accs.get(name)!.toJSON();
        writeCheckpoint(statePath, state);
        opts.onImageDone?.(i);
        const r = accs.get(first.name)!.result();
        progress.update(
          state.nextIndex,
          `${first.name}: pixAcc ${(100 * r.pixelAccuracy).toFixed(2)} mIoU ${(100 * r.mIoU).toFixed(2)} mAP ${(100 * r.mAP).toFixed(2)}`,
        );
        await stopPoint(state.nextIndex, todo.length);
      }
    } finally {
      unwatch();
      await pool?.close();
    }
    progress.stop();
    const summary = segSummary(
      { model: c.name, dataFile: opts.dataFile, startLayer: opts.startLayer, paper: opts.paper, shard: opts.shard },
      methods.map((m) => m.name),
      state,
      accs,
    );
    writeJsonAtomic(join(outDir, 'summary.json'), summary);
    writeFileAtomic(join(outDir, 'summary.md'), segSummaryMarkdown(summary));
    return summary;
  } finally {
    ds.close();
  }
}

function segSummary(
  run: { model: string; dataFile: string; startLayer: number; paper?: SegRunOptions['paper']; shard?: Shard },
  methods: readonly string[],
  state: SegState,
  accs: Map<string, SegmentationAccumulator>,
): SegSummary {
  const images = state.nextIndex;
  return {
    benchmark: 'segmentation',
    model: run.model,
    data: run.dataFile,
    images,
    startLayer: run.startLayer,
    secondsPerImage: images ? state.sharedSeconds / images : 0,
    metrics: SEGMENTATION_METRICS,
    methods: Object.fromEntries(
      methods.map((m) => {
        const r = accs.get(m)!.result();
        const ms = state.methods[m]!;
        return [m, methodSummary(r, ms.seconds + state.sharedSeconds, ms.constantMaps)];
      }),
    ),
    ...(run.paper ? { paper: run.paper } : {}),
    shard: run.shard ?? null,
  };
}

/**
 * Joins finished shards into the run one machine would have made: accumulators merged (exact sums, so
 * the numbers are identical), per_image.csv rows in data-set order, the saved panels, run.json without
 * the shard. Timings are the sums of the shards'.
 */
export function mergeSegmentationShards(
  outDir: string,
  shards: readonly ShardRun[],
  identity: RunIdentity,
): SegSummary {
  const states = shards.map((r) => JSON.parse(readFileSync(join(r.dir, 'state.json'), 'utf8')) as SegState);
  const summaries = shards.map((r) => JSON.parse(readFileSync(join(r.dir, 'summary.json'), 'utf8')) as SegSummary);
  const methods = identity.methods as string[];
  const accs = new Map(methods.map((m) => [m, new SegmentationAccumulator()]));
  const state: SegState = { nextIndex: 0, csvBytes: 0, sharedSeconds: 0, methods: {} };
  for (const m of methods)
    state.methods[m] = { acc: new SegmentationAccumulator().toJSON(), seconds: 0, constantMaps: 0 };
  for (const s of states) {
    state.nextIndex += s.nextIndex;
    state.sharedSeconds += s.sharedSeconds;
    for (const m of methods) {
      const part = s.methods[m];
      if (!part) throw new FileFormatError(join(shards[0]!.dir, 'state.json'), `no accumulator for method ${m}`);
      accs.get(m)!.merge(SegmentationAccumulator.fromJSON(part.acc));
      state.methods[m]!.seconds += part.seconds;
      state.methods[m]!.constantMaps += part.constantMaps;
    }
  }
  for (const m of methods) state.methods[m]!.acc = accs.get(m)!.toJSON();
  // per_image.csv: every shard's rows, in data-set order (a stable sort keeps each image's method order).
  let header = '';
  const rows: { index: number; line: string }[] = [];
  for (const r of shards) {
    const file = join(r.dir, 'per_image.csv');
    const lines = readFileSync(file, 'utf8').split('\n');
    header ||= lines[0]!;
    for (const line of lines.slice(1)) {
      if (!line) continue;
      const m = /^(\d+),/.exec(line);
      if (!m) throw new FileFormatError(file, `a row that does not start with an image index: ${line.slice(0, 60)}`);
      rows.push({ index: Number(m[1]), line });
    }
  }
  rows.sort((a, b) => a.index - b.index);
  const csv = `${header}\n${rows.map((r) => `${r.line}\n`).join('')}`;
  writeJsonAtomic(join(outDir, 'run.json'), identity);
  writeFileAtomic(join(outDir, 'per_image.csv'), csv);
  state.csvBytes = Buffer.byteLength(csv);
  state.csvSha256 = createHash('sha256').update(csv).digest('hex');
  writeCheckpoint(join(outDir, 'state.json'), state);
  for (const r of shards) {
    const dir = join(r.dir, 'images');
    if (!existsSync(dir)) continue;
    mkdirSync(join(outDir, 'images'), { recursive: true });
    for (const f of readdirSync(dir)) copyFileSync(join(dir, f), join(outDir, 'images', f));
  }
  const first = summaries[0]!;
  const summary = segSummary(
    { model: first.model, dataFile: first.data, startLayer: first.startLayer, paper: first.paper },
    methods,
    state,
    accs,
  );
  writeJsonAtomic(join(outDir, 'summary.json'), summary);
  writeFileAtomic(join(outDir, 'summary.md'), segSummaryMarkdown(summary));
  return summary;
}

function methodSummary(r: SegmentationResult, seconds: number, constantMaps: number): SegMethodSummary {
  return {
    pixelAccuracy: 100 * r.pixelAccuracy,
    mIoU: 100 * r.mIoU,
    mAP: 100 * r.mAP,
    iouBackground: 100 * r.iou[0],
    iouForeground: 100 * r.iou[1],
    rowF1: 100 * r.mF1,
    images: r.images,
    constantMaps,
    seconds,
    referenceLines: formatReferenceLines(r),
  };
}

/** What one image yields, wherever it was computed: per method, its statistics (and map, for panels). */
export interface SegImageResult {
  index: number;
  id: string;
  /** Seconds of the shared explanation pass. */
  sharedSeconds: number;
  methods: {
    method: string;
    /** The explained class ('' for class-agnostic methods). */
    cls: number | '';
    constant: boolean;
    stats: ImageSegStats;
    /** Seconds of this method's scoring. */
    seconds: number;
    /** The map (H·W), only when the image's panel is saved. */
    map?: Float32Array;
  }[];
  /** The picture and mask for the saved panel (with `keepMaps` only). */
  panel?: { picture: { width: number; height: number; data: Uint8Array }; label: Uint8Array };
}

export interface SegWorkerSetup {
  backend: BackendChoice;
  spec: ModelSpec;
  dataFile: string;
  methods: string[];
  /** Plug-in method files (absolute), which each worker imports by path. */
  plugins: string[];
  startLayer: number;
}

export interface SegWorkerItem {
  index: number;
  keepMaps: boolean;
}

/** Explains image `i` with every method in one shared pass and scores each map against the mask. */
export async function evaluateSegImage(
  model: VisionTransformer,
  ds: GtsegsDataset,
  i: number,
  methods: readonly ExplanationMethod[],
  startLayer: number,
  keepMaps: boolean,
): Promise<SegImageResult> {
  const c = model.config;
  const item = ds.get(i);
  const pre = preprocessSegItem(item, { height: c.img_size, width: c.img_size }, c.mean, c.std);
  const t0 = performance.now();
  const input = tf.tensor4d(pre.input, [1, c.in_chans, c.img_size, c.img_size]);
  const ex = await explain(model, input, methods, {
    startLayer,
    input64: forwardPrecision() === 'f64' ? normalizeCHWF64(pre.unit, c.mean, c.std) : undefined,
  });
  input.dispose();
  const sharedSeconds = (performance.now() - t0) / 1000;
  return {
    index: i,
    id: item.id ?? '',
    sharedSeconds,
    methods: ex.methods.map((m) => {
      const t1 = performance.now();
      const constant = m.constant[0]!;
      const stats = segmentImage(m.map[0]!, pre.label, { constant, width: c.img_size });
      return {
        method: m.method,
        cls: m.classes ? m.classes[0]! : '',
        constant,
        stats,
        seconds: (performance.now() - t1) / 1000,
        ...(keepMaps ? { map: m.map[0]! } : {}),
      };
    }),
    ...(keepMaps ? { panel: { picture: pre.picture, label: pre.label } } : {}),
  };
}

export function segSummaryMarkdown(s: SegSummary): string {
  const lines = [
    `# Segmentation benchmark: ${s.model}`,
    '',
    `Data: \`${basename(s.data)}\`, ${s.images} images; start layer ${s.startLayer}; ${s.secondsPerImage.toFixed(3)} s per image for all methods together.`,
    'Pixel accuracy and mIoU from dataset-level counts, mAP = mean of per-image pooled AP (percent).',
    '',
  ];
  const paper = s.paper;
  if (paper) {
    lines.push(
      '| method | pixel accuracy | (paper) | mIoU | (paper) | mAP | (paper) |',
      '|---|---|---|---|---|---|---|',
    );
    for (const [name, m] of Object.entries(s.methods)) {
      const p = paper[name];
      const f = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(2));
      lines.push(
        `| ${name} | ${f(m.pixelAccuracy)} | ${f(p?.pixelAccuracy)} | ${f(m.mIoU)} | ${f(p?.mIoU)} | ${f(m.mAP)} | ${f(p?.mAP)} |`,
      );
    }
  } else {
    lines.push(
      '| method | pixel accuracy | mIoU | mAP | IoU bg | IoU fg | constant maps |',
      '|---|---|---|---|---|---|---|',
    );
    for (const [name, m] of Object.entries(s.methods)) {
      lines.push(
        `| ${name} | ${m.pixelAccuracy.toFixed(2)} | ${m.mIoU.toFixed(2)} | ${m.mAP.toFixed(2)} | ${m.iouBackground.toFixed(2)} | ${m.iouForeground.toFixed(2)} | ${m.constantMaps} |`,
      );
    }
  }
  lines.push('');
  return lines.join('\n');
}

async function saveOverlay(
  file: string,
  pre: { picture: { width: number; height: number; data: Uint8Array }; label: Uint8Array },
  maps: readonly { method: string; map?: Float32Array }[],
): Promise<void> {
  const { width, height, data } = pre.picture;
  const maskRgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) maskRgb.fill(pre.label[i] ? 255 : 0, 3 * i, 3 * i + 3);
  await writePanelsPng(file, [
    { title: 'image', rgb: data, width, height },
    { title: 'mask', rgb: maskRgb, width, height },
    ...maps.map((m) => ({ title: m.method, rgb: overlayHeatmap(data, m.map!, width, height), width, height })),
  ]);
}
