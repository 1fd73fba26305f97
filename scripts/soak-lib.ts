/**
 * The parts of the soak (scripts/soak.ts) that the CI-sized test (test/soak.test.ts) also uses: synthesising the
 * data sets in the real formats, running a bench command as a child process while sampling it, reading its
 * summary's counts, the flatness figures, and the plot.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type * as vl from 'vega-lite';
import { writeGtsegsMat } from '../src/datasets/gtsegs-writer.js';
import { renderShapeSample, SHAPE_CLASSES } from '../src/datasets/synthetic-shapes.js';
import { writeFileAtomic } from '../src/util/files.js';
import { Rng } from '../src/util/random.js';
import { SOAK_SAMPLE_PREFIX, type SoakSample } from '../src/util/soak-sample.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const BENCH_BIN = join(ROOT, 'bin', 'bench.js');
/** The paper's sizes: gtsegs_ijcv.mat holds 4,276 images; the perturbation test runs on ImageNet val (≥ 5,000 here). */
export const PAPER_SEG_IMAGES = 4276;
export const PAPER_VAL_IMAGES = 5000;
export const SOAK_COMMANDS = ['seg', 'visualize', 'perturb'] as const;
export type SoakCommand = (typeof SOAK_COMMANDS)[number];

// Seeds disjoint from the embedded data's (20e6, 30e6, 40e6) and the training seeds.
const SEG_SEED = 60_000_000;
const VAL_SEED = 70_000_000;
/** Bump when the synthesised data changes, so that cached copies are remade. */
const DATA_VERSION = 1;

const MiB = 2 ** 20;

function stampMatches(file: string, stamp: object): boolean {
  try {
    return readFileSync(file, 'utf8') === JSON.stringify(stamp);
  } catch {
    return false;
  }
}

function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0);
}

export interface SynthResult {
  path: string;
  images: number;
  bytes: number;
  /** Seconds spent making it; 0 when a cached copy was reused. */
  seconds: number;
  cached: boolean;
}

/**
 * A gtsegs_ijcv.mat-layout MATLAB v7.3 file of `n` synthetic shapes images (160–288 px a side, as the embedded set),
 * with their object masks, at `<dir>/seg-<n>.mat`; reused when an identical one is there.
 */
export async function synthesiseSegMat(dir: string, n: number, log: (s: string) => void): Promise<SynthResult> {
  const file = join(dir, `seg-${n}.mat`);
  const stampFile = `${file}.stamp.json`;
  const stamp = { kind: 'gtsegs', images: n, seed: SEG_SEED, version: DATA_VERSION };
  if (existsSync(file) && stampMatches(stampFile, stamp))
    return { path: file, images: n, bytes: sizeOf(file), seconds: 0, cached: true };
  mkdirSync(dir, { recursive: true });
  rmSync(stampFile, { force: true });
  const t0 = performance.now();
  const rng = new Rng(SEG_SEED);
  const items = [];
  for (let i = 0; i < n; i++) {
    const width = rng.int(160, 289);
    const height = rng.int(160, 289);
    const s = renderShapeSample(SEG_SEED + i, width, height, i % SHAPE_CLASSES.length);
    items.push({ image: s.image, mask: s.mask, id: `soak_${SHAPE_CLASSES[s.label]}_${String(i).padStart(5, '0')}` });
    if ((i + 1) % 500 === 0 || i + 1 === n) log(`synthesising ${file}: ${i + 1}/${n} images rendered`);
  }
  log(`synthesising ${file}: writing the MAT-file`);
  await writeGtsegsMat(file, items);
  writeFileSync(stampFile, JSON.stringify(stamp));
  return { path: file, images: n, bytes: sizeOf(file), seconds: (performance.now() - t0) / 1000, cached: false };
}

/**
 * An ImageNet-style validation folder `<dir>/val-<n>/val/<wnid>/ILSVRC2012_val_<k>.JPEG` of `n` synthetic shapes
 * images (160–320 px a side, JPEG quality 90, as the embedded folder; wnid n0000000c = class c); reused when an
 * identical one is there.
 */
export async function synthesiseValFolder(dir: string, n: number, log: (s: string) => void): Promise<SynthResult> {
  const root = join(dir, `val-${n}`);
  const stampFile = `${root}.stamp.json`;
  const stamp = { kind: 'imagenet-folder', images: n, seed: VAL_SEED, version: DATA_VERSION };
  if (existsSync(root) && stampMatches(stampFile, stamp))
    return { path: root, images: n, bytes: sizeOf(root), seconds: 0, cached: true };
  rmSync(stampFile, { force: true });
  rmSync(root, { recursive: true, force: true });
  const { default: sharp } = await import('sharp');
  const t0 = performance.now();
  const rng = new Rng(VAL_SEED);
  for (let c = 0; c < SHAPE_CLASSES.length; c++)
    mkdirSync(join(root, 'val', `n${String(c).padStart(8, '0')}`), { recursive: true });
  // Render the next image while sharp encodes this one (on its own threads).
  let pending: Promise<unknown> = Promise.resolve();
  for (let i = 0; i < n; i++) {
    const width = rng.int(160, 321);
    const height = rng.int(160, 321);
    const label = i % SHAPE_CLASSES.length;
    const s = renderShapeSample(VAL_SEED + i, width, height, label);
    await pending;
    const file = join(
      root,
      'val',
      `n${String(label).padStart(8, '0')}`,
      `ILSVRC2012_val_${String(i + 1).padStart(8, '0')}.JPEG`,
    );
    pending = sharp(Buffer.from(s.image.data), { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
    if ((i + 1) % 500 === 0 || i + 1 === n) log(`synthesising ${root}: ${i + 1}/${n} JPEGs`);
  }
  await pending;
  writeFileSync(stampFile, JSON.stringify(stamp));
  return { path: root, images: n, bytes: sizeOf(root), seconds: (performance.now() - t0) / 1000, cached: false };
}

/** One sample of a command, as written to the soak JSON (issue 13's interface, plus context). */
export interface Sample {
  command: SoakCommand;
  /** Items the command's progress bar had counted (perturb: images × settings × vis files). */
  images: number;
  /**
   * Resident set size as the child read it right after a full garbage collection (src/util/soak-sample.ts). Read
   * from /proc/<pid> when the line arrived instead, it caught the child at an arbitrary point of its next batch.
   */
  rssMiB: number;
  /** The highest RSS the child has had so far (its ru_maxrss): a high-water mark, like the wasm heap. */
  peakRssMiB: number;
  /** The wasm backend's heap (WebAssembly memory) reported by the child; null on another backend. */
  heapMiB: number | null;
  /** V8's used heap, reported by the child. */
  jsHeapMiB: number;
  /** Tensors TensorFlow.js holds. */
  tfTensors: number | null;
  /** Entries of /proc/<pid>/fd when the line arrived; the child's own count if unreadable. */
  openFds: number | null;
  /** Since the previous sample of this command; null for the first. */
  imagesPerSecond: number | null;
  /** Seconds since the child's first sample. */
  elapsedS: number;
  /** CPU seconds (user + system) the command had used, from /proc/<pid>/stat; null without /proc. */
  cpuS: number | null;
  /** Items per CPU second since the previous sample: throughput that other load on the machine does not move. */
  imagesPerCpuSecond: number | null;
  /** The host's 1-minute load average when the sample arrived. */
  load1: number;
}

/** utime + stime of a process in seconds (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s). */
function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function procFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export interface CommandRun {
  command: SoakCommand;
  args: string[];
  seconds: number;
  samples: Sample[];
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Runs `bench <command> <args>` (bin/bench.js, a child process) with BENCH_SOAK_SAMPLE=every and collects its
 * samples, adding what is observable from outside: open descriptors and CPU time under /proc/<pid>. Throws a one-line
 * error with the command's last stderr line when it fails.
 */
export function runSampled(
  command: SoakCommand,
  args: string[],
  every: number,
  onSample: (s: Sample) => void = () => {},
): Promise<CommandRun> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BENCH_BIN, command, ...args], {
      cwd: ROOT,
      env: { ...process.env, BENCH_SOAK_SAMPLE: String(every) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const samples: Sample[] = [];
    const tail: string[] = [];
    let first: SoakSample | undefined;
    let prev: SoakSample | undefined;
    let buf = '';
    const onLine = (line: string) => {
      const at = line.indexOf(SOAK_SAMPLE_PREFIX);
      if (at < 0) {
        if (line.trim()) tail.push(line.trim());
        if (tail.length > 20) tail.shift();
        return;
      }
      const s = JSON.parse(line.slice(at + SOAK_SAMPLE_PREFIX.length)) as SoakSample;
      const pid = child.pid ?? -1;
      const fds = procFds(pid) ?? s.openFds;
      const cpu = procCpuSeconds(pid) ?? null;
      first ??= s;
      let rate: number | null = null;
      let cpuRate: number | null = null;
      const before = samples.at(-1);
      if (prev && s.images > prev.images) {
        rate = (s.images - prev.images) / ((s.ms - prev.ms) / 1000);
        if (cpu !== null && before?.cpuS != null && cpu > before.cpuS)
          cpuRate = (s.images - prev.images) / (cpu - before.cpuS);
      } else if (prev && s.images === prev.images) {
        // A repeated count (the final sample right after a regular one) replaces that sample and keeps its rates.
        samples.pop();
        rate = before?.imagesPerSecond ?? null;
        cpuRate = before?.imagesPerCpuSecond ?? null;
      }
      const sample: Sample = {
        command,
        images: s.images,
        rssMiB: round(s.rssBytes / MiB),
        peakRssMiB: round(s.peakRssBytes / MiB),
        heapMiB: s.wasmHeapBytes === null ? null : round(s.wasmHeapBytes / MiB),
        jsHeapMiB: round(s.jsHeapBytes / MiB),
        tfTensors: s.tfTensors,
        openFds: fds,
        imagesPerSecond: rate === null ? null : round(rate, 3),
        elapsedS: round((s.ms - first.ms) / 1000),
        cpuS: cpu,
        imagesPerCpuSecond: cpuRate === null ? null : round(cpuRate, 3),
        load1: round(loadavg()[0]!),
      };
      samples.push(sample);
      prev = s;
      onSample(sample);
    };
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    });
    child.on('error', (e) => reject(new Error(`cannot start bench ${command}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (buf) onLine(buf);
      if (code !== 0) {
        const why = tail.at(-1) ?? 'no output';
        reject(new Error(`bench ${command} failed (${signal ?? `exit ${code}`}): ${why}`));
        return;
      }
      resolvePromise({ command, args, seconds: (performance.now() - t0) / 1000, samples });
    });
  });
}

/** What each command's own output says it counted. */
export interface SummaryCounts {
  /** Images the summary says were evaluated (per method / file / setting: all of them). */
  counts: Record<string, number>;
}

export function readSummaryCounts(command: SoakCommand, outDir: string): SummaryCounts {
  const read = (f: string) => JSON.parse(readFileSync(join(outDir, f), 'utf8'));
  const counts: Record<string, number> = {};
  if (command === 'seg') {
    const s = read('summary.json') as { images: number; methods: Record<string, { images: number }> };
    counts.images = s.images;
    for (const [m, v] of Object.entries(s.methods)) counts[`${m}.images`] = v.images;
    const rows = readFileSync(join(outDir, 'per_image.csv'), 'utf8').trim().split('\n').length - 1;
    counts['per_image.csv rows / methods'] = rows / Object.keys(s.methods).length;
  } else if (command === 'visualize') {
    const files = readdirSync(outDir).filter((f) => /^visualize-.*\.json$/.test(f));
    if (files.length === 0) throw new Error(`no visualize-<class>.json in ${outDir}`);
    for (const f of files) counts[f] = (read(f) as { images: number }).images;
  } else {
    const s = read('summary.json') as {
      results: Record<string, Record<string, Record<string, { images: number }>>>;
    };
    for (const [m, byClass] of Object.entries(s.results))
      for (const [vc, bySetting] of Object.entries(byClass))
        for (const [setting, r] of Object.entries(bySetting)) counts[`${m}.${vc}.${setting}`] = r.images;
  }
  return { counts };
}

export interface Flatness {
  /** The first sample at or after the warm-up count, and the last sample. */
  from: number;
  to: number;
  start: number | null;
  end: number | null;
  max: number | null;
  /** 100 × (end − start) / start. */
  endGrowthPercent: number | null;
  /** 100 × (max after warm-up − start) / start. */
  maxGrowthPercent: number | null;
}

export function flatness(samples: Sample[], pick: (s: Sample) => number | null, warmup: number): Flatness | null {
  const after = samples.filter((s) => s.images >= warmup);
  if (after.length < 2) return null;
  const a = after[0]!;
  const b = after.at(-1)!;
  const start = pick(a);
  const end = pick(b);
  const vals = after.map(pick).filter((v): v is number => v !== null);
  const max = vals.length ? Math.max(...vals) : null;
  const pct = (x: number | null) =>
    x === null || start === null || start === 0 ? null : round((100 * (x - start)) / start, 3);
  return { from: a.images, to: b.images, start, end, max, endGrowthPercent: pct(end), maxGrowthPercent: pct(max) };
}

/** Items/s after warm-up: the first half of the intervals against the second half (a drift shows as a ratio ≠ 1). */
export function throughput(
  samples: Sample[],
  warmup: number,
  pick: (s: Sample) => number | null = (s) => s.imagesPerSecond,
) {
  const rates = samples.filter((s) => s.images > warmup && pick(s) !== null).map((s) => pick(s) as number);
  if (rates.length === 0) return null;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const h = Math.max(1, Math.floor(rates.length / 2));
  const first = mean(rates.slice(0, h));
  const second = rates.length > 1 ? mean(rates.slice(h)) : first;
  return {
    mean: round(mean(rates), 3),
    min: round(Math.min(...rates), 3),
    max: round(Math.max(...rates), 3),
    firstHalf: round(first, 3),
    secondHalf: round(second, 3),
    secondOverFirst: round(second / first, 3),
  };
}

/**
 * RSS, peak RSS, wasm heap, V8 heap, open fds and items/s against the count, one panel each, a line per command;
 * SVG and PNG.
 */
export async function writeSoakPlot(base: string, samples: Sample[], title: string): Promise<void> {
  const metrics: [string, (s: Sample) => number | null][] = [
    ['RSS (MiB)', (s) => s.rssMiB],
    ['peak RSS (MiB)', (s) => s.peakRssMiB],
    ['wasm heap (MiB)', (s) => s.heapMiB],
    ['V8 heap used (MiB)', (s) => s.jsHeapMiB],
    ['open file descriptors', (s) => s.openFds],
    ['images/s', (s) => s.imagesPerSecond],
    ['images per CPU second', (s) => s.imagesPerCpuSecond],
  ];
  const values = samples.flatMap((s) =>
    metrics.flatMap(([metric, pick]) => {
      const v = pick(s);
      return v === null ? [] : [{ command: s.command, images: s.images, metric, value: v }];
    }),
  );
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    facet: { row: { field: 'metric', type: 'nominal', title: null, sort: metrics.map(([m]) => m) } },
    resolve: { scale: { y: 'independent', x: 'independent' } },
    spec: {
      width: 520,
      height: 120,
      mark: { type: 'line', point: { size: 12 } },
      encoding: {
        x: { field: 'images', type: 'quantitative', title: 'items done (perturb: images × settings)' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false }, axis: { format: '~r' } },
        color: { field: 'command', type: 'nominal', title: 'command' },
      },
    },
  };
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vegaLite.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  writeFileAtomic(`${base}.svg`, svg);
  const { default: sharp } = await import('sharp');
  const png = await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toBuffer();
  writeFileAtomic(`${base}.png`, png);
}
