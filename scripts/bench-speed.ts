/**
 * Speed benchmark (issue 7): seconds per image for the forward pass alone, each method alone and all six
 * methods together, on the ViT-B/16 geometry with deterministic random weights (no download needed),
 * plus the process's peak RSS, against the official PyTorch implementation's timings.
 *
 *   npm run bench:speed -- [--runs 3] [--workers 1] [--json FILE] [--model vit_base_patch16_224]
 *                          [--backend auto] [--method NAME ...] [--skip-alone] [--skip-sweep] [--warmup 1]
 *                          [--save-maps FILE [--compare-maps FILE]]
 *   npm run bench:speed -- --job perturb [--workers 2] [--images 4] [--batch-size 16]
 *                          [--classifier-engine tfjs|onnxruntime] [--json FILE]
 *
 * `--job perturb` times the perturbation test instead (issue 13): per image, the unperturbed pass and the nine
 * steps of the positive and of the negative test (19 classifier passes), batched as `bench perturb` batches
 * them, on deterministic pseudo-random images and maps, with one worker and then with `--workers`, side by side
 * in one run. `--json` then adds `{ "perturb": { workers, oneWorker, nWorkers, batchSize, … } }` to the file,
 * keeping the keys already in it.
 *
 * Every measurement runs on `--workers` worker_threads, each with its own backend and model copy
 * (src/engine/worker-pool.ts). One run hands one image to each worker and times the batch on the wall
 * clock: seconds per image = batch time / workers (throughput). Each measurement has one untimed warm-up
 * run (weight packing, kernel caches; `--warmup N` for the sweep job, 0 where a run is too slow to repeat, as
 * webgpu on a software adapter). Reported: median, min and max over `--runs` runs.
 * Ratios are to the anchors' as-installed row (2 cores) for --workers ≥ 2, and to their one-core row
 * for --workers 1. The sweep's output digests are written per image so that runs with different
 * worker counts can be checked for identical numbers.
 * Timings on a shared machine are noisy; compare figures taken in the same minute, on a quiet machine.
 *
 * `--save-maps FILE` writes the logits and every method's raw and final maps of image 0 (the first timed run's,
 * from the method's own measurement, else from the sweep) as a map file (scripts/map-compare.ts);
 * `--compare-maps FILE` then compares them with another run's file (another backend's, on the same weights and
 * input) within mapTolerance()'s bounds and records the result; `--noise-maps FILE` (that backend's run with
 * `--jitter-input`, every input value moved by one ulp) scales each bound to the float32 noise of the map. The maps file and the `--json` file are written
 * after every measurement (`complete: false` until the last), so a run cut short keeps what it measured.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_CHOICES, type BackendChoice } from '../src/engine/backend.js';
import { WorkerPool } from '../src/engine/worker-pool.js';
import { METHOD_NAMES, resolveMethods } from '../src/methods/registry.js';
import { forwardPrecision } from '../src/models/forward-precision.js';
import type { SpeedResult, SpeedSetup, SpeedTask } from './bench-speed-worker.js';
import { compareMapFiles, formatComparison, type MapComparison, type SavedMap, writeMapFile } from './map-compare.js';

const args = await yargs(hideBin(process.argv))
  .option('runs', { type: 'number', default: 3, describe: 'timed runs per measurement (after one warm-up)' })
  .option('workers', { type: 'number', default: 1, describe: 'worker threads, each with its own backend' })
  .option('json', { type: 'string', describe: 'write the results (medians, s/image) to this JSON file' })
  .option('model', { type: 'string', default: 'vit_base_patch16_224' })
  .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
  .option('method', { type: 'string', array: true, describe: 'methods to time alone (default: all six)' })
  .option('skip-alone', { type: 'boolean', default: false, describe: 'only the forward pass and the sweep' })
  .option('skip-sweep', { type: 'boolean', default: false, describe: 'no six-method sweep' })
  .option('warmup', { type: 'number', default: 1, describe: 'untimed warm-up runs per measurement (sweep job)' })
  .option('jitter-input', {
    type: 'boolean',
    default: false,
    describe: 'move every input value by one float32 ulp (how far the maps move under float32 noise)',
  })
  .option('save-maps', {
    type: 'string',
    describe: "write image 0's logits and raw and final maps to this safetensors file",
  })
  .option('compare-maps', {
    type: 'string',
    describe: "compare the maps with another run's --save-maps file (needs --save-maps)",
  })
  .option('noise-maps', {
    type: 'string',
    describe: "with --compare-maps: that backend's --jitter-input maps; bounds scale with how far they move",
  })
  .option('job', {
    choices: ['sweep', 'perturb'] as const,
    default: 'sweep' as const,
    describe: 'sweep: forward, methods and the six-method sweep; perturb: the perturbation test',
  })
  .option('images', { type: 'number', default: 4, describe: '--job perturb: images per timed run' })
  .option('batch-size', { type: 'number', default: 16, describe: '--job perturb: images per classifier batch' })
  .option('classifier-engine', {
    choices: ['tfjs', 'onnxruntime'] as const,
    default: 'tfjs' as const,
    describe: '--job perturb: what runs the classifier passes (as bench perturb --classifier-engine)',
  })
  .check((a) => {
    if (!Number.isInteger(a.runs) || a.runs < 1) throw new Error('--runs must be a positive integer');
    if (!Number.isInteger(a.warmup) || a.warmup < 0) throw new Error('--warmup must be a non-negative integer');
    if (a['compare-maps'] !== undefined && a['save-maps'] === undefined)
      throw new Error('--compare-maps needs --save-maps (the maps of this run, to compare)');
    for (const o of ['compare-maps', 'noise-maps'] as const) {
      const f = a[o];
      if (f !== undefined && !existsSync(f)) throw new Error(`--${o}: no such file: ${f}`);
    }
    if (a['noise-maps'] !== undefined && a['compare-maps'] === undefined)
      throw new Error('--noise-maps needs --compare-maps');
    if (!Number.isInteger(a.workers) || a.workers < 1) throw new Error('--workers must be a positive integer');
    if (!Number.isInteger(a.images) || a.images < 1) throw new Error('--images must be a positive integer');
    if (!Number.isInteger(a['batch-size']) || a['batch-size'] < 1)
      throw new Error('--batch-size must be a positive integer');
    return true;
  })
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`bench:speed: error: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .parseAsync();

/**
 * The official implementation (PyTorch, CPU) on this machine, seconds per 224×224 image (issue 7).
 * Keyed by our method names; the reference scripts call them attn_last_layer (raw_attention),
 * attn_gradcam (gradcam), full_lrp (lrp), lrp_last_layer (partial_lrp).
 */
const ANCHORS = {
  'as-installed (2 cores)': {
    forward: 0.27,
    rollout: 0.26,
    raw_attention: 3.43,
    gradcam: 0.91,
    lrp: 3.1,
    partial_lrp: 3.01,
    transformer_attribution: 3.12,
    sweep: 13.8,
  },
  'one core': {
    forward: 0.43,
    rollout: 0.43,
    raw_attention: 4.95,
    gradcam: 1.33,
    lrp: 5.06,
    partial_lrp: 5.06,
    transformer_attribution: 5.06,
    sweep: 21.9,
  },
} as const;
/** Targets as a ratio to the anchor (issue 7). */
const TARGETS: Record<string, number> = { forward: 2, transformer_attribution: 1, sweep: 0.5 };

const row = args.workers >= 2 ? 'as-installed (2 cores)' : 'one core';
const anchors: Record<string, number> = ANCHORS[row];

interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

const workerModule = new URL('./bench-speed-worker.ts', import.meta.url);
const setup: SpeedSetup = { model: args.model, backend: args.backend, jitterInput: args['jitter-input'] };
if (args.job === 'perturb') {
  await perturbJob();
  process.exit(0);
}
const tStart = performance.now();
const pool = await WorkerPool.start<SpeedSetup, SpeedTask, SpeedResult>(workerModule, args.workers, setup);
const digests: Record<string, Record<number, string>> = {};
/** Largest worker wasm heap after each timed run, per measurement. */
const heapByRun: Record<string, number[]> = {};
let backendName = '';
let backendDescription = '';
const keepMaps = args['save-maps'] !== undefined;
/** Image 0's maps per method (the first measurement that computed the method), and its logits. */
const savedMaps = new Map<string, SavedMap>();
let savedLogits: Float32Array | undefined;

/** `warmup` warm-up runs, then `runs` runs of one image per worker; s/image = batch wall time / workers. */
async function measure(label: string, methods: SpeedTask['methods']): Promise<Stat> {
  const batch = (images: number[]) => images.map((image) => ({ methods, image }));
  for (let w = 0; w < args.warmup; w++) await pool.map(batch(Array.from({ length: pool.size }, (_, i) => i)));
  const runs: number[] = [];
  const seen: Record<number, string> = {};
  const heaps: number[] = [];
  heapByRun[label] = heaps;
  for (let r = 0; r < args.runs; r++) {
    // Image r·workers + i: the same images for every measurement, so that runs with different worker
    // counts can be compared image by image (their digests).
    const images = Array.from({ length: pool.size }, (_, i) => r * pool.size + i);
    const tasks: SpeedTask[] = batch(images).map((t) => (keepMaps && t.image === 0 ? { ...t, keepMaps } : t));
    const t0 = performance.now();
    const out = await pool.map(tasks);
    runs.push((performance.now() - t0) / 1000 / pool.size);
    out.forEach((o, i) => {
      seen[images[i]!] = o.digest;
      if (!o.maps) return;
      savedLogits ??= o.maps.logits;
      for (const m of o.maps.methods) if (!savedMaps.has(m.method)) savedMaps.set(m.method, m);
    });
    backendName = out[0]!.backend;
    backendDescription = out[0]!.description;
    heaps.push(Math.max(...out.map((o) => o.heapMiB)));
  }
  digests[label] = seen;
  const sorted = [...runs].sort((a, b) => a - b);
  const stat = { median: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted.at(-1)!, runs };
  const anchor = anchors[label];
  const ratio = anchor ? `  ${(stat.median / anchor).toFixed(2)}× anchor` : '';
  console.log(`  ${label.padEnd(24)} ${fmt(stat)}${ratio}`);
  stats[label] = stat;
  writeProgress(false);
  return stat;
}

function fmt(s: Stat): string {
  return `median ${s.median.toFixed(2)}  min ${s.min.toFixed(2)}  max ${s.max.toFixed(2)} s/image`;
}

console.log(
  `bench:speed — ${args.model} (random weights), backend ${args.backend}, ${args.workers} worker(s), ` +
    `${args.runs} timed run(s) per measurement after ${args.warmup} warm-up(s), forward ${forwardPrecision()}; ${cpus().length} CPU(s): ${cpus()[0]?.model ?? '?'}`,
);
console.log(`(workers started in ${((performance.now() - tStart) / 1000).toFixed(1)} s)`);
const stats: Record<string, Stat> = {};
const methodNames = args['skip-alone'] ? [] : resolveMethods(args.method ?? [...METHOD_NAMES]).map((m) => m.name);
let mapComparison: MapComparison | undefined;
await measure('forward', 'forward');
for (const name of methodNames) await measure(name, [name]);
if (!args['skip-sweep']) await measure('sweep', [...METHOD_NAMES]);
await pool.close();
writeProgress(true);
const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);

console.log(`\nbackend ${backendName}; ratios against the anchors' ${row} row\n`);
console.log('| what | median s/image | min | max | anchor | ratio | target |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, s] of Object.entries(stats)) {
  const a = anchors[name];
  const target = TARGETS[name];
  const ratio = a ? s.median / a : undefined;
  const verdict =
    target === undefined || ratio === undefined ? '' : `≤ ${target}× ${ratio <= target ? 'met' : 'NOT met'}`;
  console.log(
    `| ${name === 'sweep' ? 'all six together' : name} | ${s.median.toFixed(2)} | ${s.min.toFixed(2)} | ${s.max.toFixed(2)} | ${a ?? ''} | ${ratio?.toFixed(2) ?? ''} | ${verdict} |`,
  );
}
const sweepHeaps = heapByRun.sweep ?? [];
const largestHeap = Math.max(...Object.values(heapByRun).flat());
console.log(
  `\npeak RSS ${peakRssMiB} MiB (whole process: ${args.workers} worker(s), each with its own model copy)` +
    (largestHeap > 0
      ? `; largest wasm heap of a worker ${largestHeap.toFixed(0)} MiB (limit 4096)` +
        (sweepHeaps.length
          ? `; over the sweep's runs it went ${sweepHeaps.map((h) => h.toFixed(0)).join(' → ')} MiB`
          : '')
      : ''),
);
if (args['save-maps']) console.log(`wrote ${args['save-maps']} (maps of ${[...savedMaps.keys()].join(', ')})`);
if (mapComparison) {
  console.log(`\n${formatComparison(mapComparison)}`);
  if (!mapComparison.pass) process.exitCode = 1;
}
if (args.json) console.log(`wrote ${args.json}`);

/**
 * Writes the maps file, compares it (`--compare-maps`) and writes the `--json` file with what has been measured so
 * far; `complete` once every measurement has run.
 */
function writeProgress(complete: boolean): void {
  const mapsFile = args['save-maps'];
  if (mapsFile && savedMaps.size) {
    writeMapFile(mapsFile, savedMaps, new Map(savedLogits ? [['logits', savedLogits]] : []), {
      backend: backendDescription,
      model: `${args.model} (random weights, scripts/random-vit-weights.ts)`,
      input: `image 0: tf.randomUniform([1, 3, H, W], -1, 1, 'float32', 7)${args['jitter-input'] ? ', every value moved by one ulp' : ''}`,
    });
    if (args['compare-maps']) mapComparison = compareMapFiles(mapsFile, args['compare-maps'], args['noise-maps']);
  }
  if (!args.json) return;
  const methods: Record<string, number> = {};
  for (const name of methodNames) if (stats[name]) methods[name] = stats[name].median;
  const out = {
    backend: backendName,
    description: backendDescription,
    workers: args.workers,
    jitterInput: args['jitter-input'],
    // The forward pass's precision (BENCH_FORWARD; the workers inherit it): it decides the ill-conditioned maps.
    forwardPrecision: forwardPrecision(),
    complete,
    measured: Object.keys(stats),
    forward: stats.forward?.median,
    methods,
    sweep: stats.sweep?.median,
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    ...(mapsFile ? { mapsFile, mapsSaved: [...savedMaps.keys()] } : {}),
    ...(mapComparison ? { mapComparison } : {}),
    // Everything below is context for the medians above.
    model: `${args.model} (random weights)`,
    runs: args.runs,
    warmup: args.warmup,
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, backend: backendName },
    loadAverage: loadavg(),
    anchorRow: row,
    anchors,
    targets: TARGETS,
    ratios: Object.fromEntries(
      Object.entries(stats)
        .filter(([n]) => anchors[n])
        .map(([n, s]) => [n, s.median / anchors[n]!]),
    ),
    stats,
    wasmHeapMiBPerRun: heapByRun,
    digests,
  };
  writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
}

/**
 * `--job perturb`: seconds per image of the perturbation test with one worker and with `--workers`, side by side.
 * A timed run gives every worker its share of `--images` (as `bench perturb` splits a batch), after one untimed
 * warm-up run; both runs use the same images, so their digests must be equal.
 */
async function perturbJob(): Promise<void> {
  const images = args.images;
  const batchSize = args['batch-size'];
  console.log(
    `bench:speed --job perturb — ${args.model} (random weights), backend ${args.backend}, ${images} image(s) per ` +
      `run, batch ≤ ${batchSize}, classifier ${args['classifier-engine']}, 1 and ${args.workers} worker(s), ${args.runs} timed run(s) after 1 warm-up; ` +
      `${cpus().length} CPU(s): ${cpus()[0]?.model ?? '?'}; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const time = async (workers: number): Promise<{ stat: Stat; digest: string; backend: string }> => {
    const pool = await WorkerPool.start<SpeedSetup, SpeedTask, SpeedResult>(workerModule, workers, setup);
    try {
      // Contiguous shares, the way bench perturb hands each worker a slice of a batch.
      const share = Math.ceil(images / workers);
      const tasks: SpeedTask[] = [];
      for (let start = 0; start < images; start += share) {
        tasks.push({
          methods: 'perturb',
          image: start,
          count: Math.min(share, images - start),
          batchSize,
          engine: args['classifier-engine'],
        });
      }
      await pool.map(tasks.map((t) => ({ ...t, count: 1 })).slice(0, workers));
      const runs: number[] = [];
      let digest = '';
      let backend = '';
      for (let r = 0; r < args.runs; r++) {
        const t0 = performance.now();
        const out = await pool.map(tasks);
        runs.push((performance.now() - t0) / 1000 / images);
        digest = out.map((o) => o.digest).join(',');
        backend = out[0]!.backend;
      }
      const sorted = [...runs].sort((a, b) => a - b);
      const stat = { median: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted.at(-1)!, runs };
      console.log(`  ${`${workers} worker(s)`.padEnd(12)} ${fmt(stat)}`);
      return { stat, digest, backend };
    } finally {
      await pool.close();
    }
  };
  const one = await time(1);
  const many = await time(args.workers);
  const speedup = one.stat.median / many.stat.median;
  console.log(
    `\n${args.workers} workers are ${speedup.toFixed(2)}× faster per image than 1 (backend ${one.backend}); ` +
      `the two runs' results are ${one.digest === many.digest ? 'identical' : 'DIFFERENT'}`,
  );
  if (args.json) {
    const file = args.json;
    const prior = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
    const perturb = {
      workers: args.workers,
      oneWorker: one.stat.median,
      nWorkers: many.stat.median,
      batchSize,
      // Context for the medians above.
      classifierEngine: args['classifier-engine'],
      speedup,
      images,
      backend: one.backend,
      model: `${args.model} (random weights)`,
      runs: args.runs,
      classifierPassesPerImage: 19,
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
      loadAverageAtStart: loadavg(),
      stats: { oneWorker: one.stat, nWorkers: many.stat },
      sameResults: one.digest === many.digest,
    };
    writeFileSync(file, `${JSON.stringify({ ...prior, perturb }, null, 2)}\n`);
    console.log(`wrote ${file}`);
  }
}
