/**
 * Soak run (issue 13, item 5): does a paper-sized run stay flat? Synthesises the data in the real formats (a
 * gtsegs_ijcv.mat-layout MATLAB v7.3 file of 4,276 images; an ImageNet-style folder val/<wnid>/*.JPEG of 5,000
 * images), runs `bench seg`, `bench visualize` and `bench perturb` on them with the embedded model (bin/bench.js as
 * child processes, one after the other), and samples every --every items: open file descriptors and CPU time from
 * /proc/<pid>; RSS (after a full garbage collection) and its high-water mark, the wasm heap, V8's heap and the live
 * tensors from the command itself (BENCH_SOAK_SAMPLE, see src/util/soak-sample.ts); and images/s. Writes
 * results/soak/<date>.json and a plot beside it (.svg, .png).
 *
 *   npm run soak -- [--images N] [--quick] [--commands seg,visualize,perturb] [--method all] [--out FILE] [--json FILE]
 *
 * The data sets are cached under --work (default .tmp/soak/); the commands' outputs go to <work>/runs/ and are
 * remade each time. The figures are about memory and throughput, not about the benchmark's numbers.
 */

import { mkdirSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { writeJsonAtomic } from '../src/util/files.js';
import {
  type CommandRun,
  flatness,
  PAPER_SEG_IMAGES,
  PAPER_VAL_IMAGES,
  ROOT,
  readSummaryCounts,
  runSampled,
  SOAK_COMMANDS,
  type SoakCommand,
  synthesiseSegMat,
  synthesiseValFolder,
  throughput,
  writeSoakPlot,
} from './soak-lib.js';

/** --quick: the CI-sized run (test/soak.test.ts explains the size). */
const QUICK = { images: 200, method: 'transformer_attribution', perturbTests: 'negative' } as const;

const log = (s: string) => process.stderr.write(`soak: ${s}\n`);

function fail(msg: string): never {
  process.stderr.write(`soak: error: ${msg}\n`);
  process.exit(1);
}

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run soak --')
  .usage('$0 [options]')
  .option('images', {
    type: 'number',
    describe: `images per data set (default: the paper's, ${PAPER_SEG_IMAGES} for seg and ${PAPER_VAL_IMAGES} for visualize/perturb)`,
  })
  .option('quick', {
    type: 'boolean',
    default: false,
    describe: `the CI-sized run: ${QUICK.images} images, --method ${QUICK.method}, --perturb-tests ${QUICK.perturbTests}`,
  })
  .option('seg-images', { type: 'number', describe: 'images in the segmentation set (overrides --images)' })
  .option('val-images', { type: 'number', describe: 'images in the validation folder (overrides --images)' })
  .option('perturb-tests', {
    choices: ['both', 'positive', 'negative'] as const,
    describe: 'which perturbation tests perturb runs (default both)',
  })
  .option('commands', {
    type: 'string',
    default: SOAK_COMMANDS.join(','),
    describe: 'commands to run, comma-separated (perturb runs on what visualize writes, so it needs visualize)',
  })
  .option('method', { type: 'string', describe: "methods for every command, comma-separated, or 'all' (default all)" })
  .option('every', { type: 'number', default: 100, describe: 'sample every N items' })
  .option('warmup', { type: 'number', default: 100, describe: 'items before the flatness figures start' })
  .option('out', {
    type: 'string',
    describe: 'the soak JSON (default results/soak/<date>.json); the plot goes beside it',
  })
  .option('json', { type: 'string', describe: 'also write the soak JSON here' })
  .option('work', {
    type: 'string',
    default: '.tmp/soak',
    describe: 'folder for the synthesised data (cached) and runs',
  })
  .strict()
  .fail((msg, err) => fail((msg || err?.message || 'bad arguments').replace(/\s*\n\s*/g, ' ')))
  .parseAsync();

const positiveInt = (name: string, v: number | undefined) => {
  if (v !== undefined && !(Number.isInteger(v) && v >= 1)) fail(`--${name} must be a positive integer, got ${v}`);
};
positiveInt('images', argv.images);
positiveInt('seg-images', argv['seg-images']);
positiveInt('val-images', argv['val-images']);
positiveInt('every', argv.every);
if (!(Number.isInteger(argv.warmup) && argv.warmup >= 0)) fail(`--warmup must be a whole number, got ${argv.warmup}`);
const commands = argv.commands
  .split(',')
  .map((c) => c.trim())
  .filter(Boolean);
for (const c of commands)
  if (!(SOAK_COMMANDS as readonly string[]).includes(c))
    fail(`--commands: unknown '${c}' (choose from ${SOAK_COMMANDS.join(', ')})`);
if (commands.length === 0) fail('--commands: give at least one of seg, visualize, perturb');
if (commands.includes('perturb') && !commands.includes('visualize'))
  fail('--commands: perturb runs on the maps visualize writes; add visualize');
const order = SOAK_COMMANDS.filter((c) => commands.includes(c));

const segImages = argv['seg-images'] ?? argv.images ?? (argv.quick ? QUICK.images : PAPER_SEG_IMAGES);
const valImages = argv['val-images'] ?? argv.images ?? (argv.quick ? QUICK.images : PAPER_VAL_IMAGES);
const method = argv.method ?? (argv.quick ? QUICK.method : 'all');
const perturbTests = argv['perturb-tests'] ?? (argv.quick ? QUICK.perturbTests : 'both');
const perturbFlags = perturbTests === 'positive' ? ['--pos'] : perturbTests === 'negative' ? ['--neg'] : [];
const work = resolve(argv.work);
const date = new Date().toISOString().slice(0, 10);
const outFile = resolve(argv.out ?? join(ROOT, 'results', 'soak', `${date}${argv.quick ? '-quick' : ''}.json`));
const plotBase = outFile.replace(/\.json$/i, '');

const started = new Date();
const load0 = loadavg();
log(
  `${order.join(', ')}; seg ${segImages} images, visualize/perturb ${valImages} images; method ${method}; perturbation tests ${perturbTests}; sampling every ${argv.every}`,
);

const data: Record<string, unknown> = {};
let segFile: string | undefined;
let valRoot: string | undefined;
try {
  /** Logs and records one synthesised data set; returns its path. */
  const made = (key: 'seg' | 'val', r: { path: string; bytes: number; cached: boolean; seconds: number }): string => {
    log(
      `${key} data: ${r.path} (${(r.bytes / 2 ** 20).toFixed(1)} MiB${r.cached ? ', cached' : `, made in ${r.seconds.toFixed(0)} s`})`,
    );
    data[key] = { ...r, path: relative(ROOT, r.path) };
    return r.path;
  };
  if (order.includes('seg')) segFile = made('seg', await synthesiseSegMat(join(work, 'data'), segImages, log));
  if (order.includes('visualize')) valRoot = made('val', await synthesiseValFolder(join(work, 'data'), valImages, log));
} catch (e) {
  fail(`synthesising the data: ${(e as Error).message}`);
}

const runs = join(work, 'runs');
const outDirs: Record<SoakCommand, string> = {
  seg: join(runs, 'seg'),
  visualize: join(runs, 'visualize'),
  perturb: join(runs, 'perturb'),
};
const argsFor: Record<SoakCommand, () => string[]> = {
  seg: () => ['--data', segFile!, '--method', method, '--out', outDirs.seg, '--quiet'],
  visualize: () => ['--data', valRoot!, '--method', method, '--out', outDirs.visualize, '--quiet'],
  perturb: () => ['--vis-dir', outDirs.visualize, '--out', outDirs.perturb, ...perturbFlags, '--quiet'],
};

/** The soak JSON; written after each command (finished: false) so that an interrupted run keeps what it measured. */
function makeReport(finished: boolean) {
  return {
    date: started.toISOString(),
    host: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      loadavgStart: load0.map((x) => Math.round(x * 100) / 100),
      loadavgEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    options: {
      quick: argv.quick,
      segImages,
      valImages,
      method,
      perturbTests,
      every: argv.every,
      warmup: argv.warmup,
      commands: order,
    },
    data,
    commands: results,
    samples: all.flatMap((r) => r.samples),
    finished,
  };
}

const results: Record<string, unknown> = {};
const all: CommandRun[] = [];
let ok = true;
for (const command of order) {
  rmSync(outDirs[command], { recursive: true, force: true });
  mkdirSync(dirname(outDirs[command]), { recursive: true });
  const args = argsFor[command]();
  log(`bench ${command} ${args.map((a) => relative(ROOT, a) || a).join(' ')}`);
  let run: CommandRun;
  try {
    run = await runSampled(command, args, argv.every, (s) =>
      log(
        `${command} ${s.images}: RSS ${s.rssMiB.toFixed(0)} MiB (peak ${s.peakRssMiB.toFixed(0)}), wasm heap ${s.heapMiB ?? '-'} MiB, V8 heap ${s.jsHeapMiB.toFixed(0)} MiB, ${s.tfTensors ?? '-'} tensors, ${s.openFds ?? '-'} fds, ${s.imagesPerSecond?.toFixed(2) ?? '-'} items/s`,
      ),
    );
  } catch (e) {
    fail((e as Error).message);
  }
  all.push(run);
  const last = run.samples.at(-1);
  const seen = last?.images ?? 0;
  const { counts } = readSummaryCounts(command, outDirs[command]);
  // perturb counts images × settings × vis files; each summary entry counts images.
  const entries = Object.values(counts);
  const perEntry = command === 'perturb' ? seen / Math.max(1, entries.length) : seen;
  const expected = command === 'seg' ? segImages : valImages;
  const countsMatch = entries.length > 0 && entries.every((n) => n === perEntry) && perEntry === expected;
  if (!countsMatch) ok = false;
  results[command] = {
    args: args.map((a) => relative(ROOT, a) || a),
    seconds: Math.round(run.seconds * 10) / 10,
    itemsSeen: seen,
    imagesSeen: perEntry,
    summaryCounts: counts,
    countsMatch,
    rssMiB: flatness(run.samples, (s) => s.rssMiB, argv.warmup),
    peakRssMiB: flatness(run.samples, (s) => s.peakRssMiB, argv.warmup),
    heapMiB: flatness(run.samples, (s) => s.heapMiB, argv.warmup),
    jsHeapMiB: flatness(run.samples, (s) => s.jsHeapMiB, argv.warmup),
    tfTensors: flatness(run.samples, (s) => s.tfTensors, argv.warmup),
    openFds: flatness(run.samples, (s) => s.openFds, argv.warmup),
    imagesPerSecond: throughput(run.samples, argv.warmup),
    imagesPerCpuSecond: throughput(run.samples, argv.warmup, (s) => s.imagesPerCpuSecond),
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeJsonAtomic(outFile, makeReport(false));
  log(
    `${command}: ${seen} items in ${run.seconds.toFixed(0)} s; summary counts ${countsMatch ? 'match' : 'DO NOT match'} (${perEntry} images)`,
  );
}

const report = makeReport(true);
mkdirSync(dirname(outFile), { recursive: true });
writeJsonAtomic(outFile, report);
if (argv.json) writeJsonAtomic(resolve(argv.json), report);
await writeSoakPlot(
  plotBase,
  report.samples,
  `bench soak: ${order.join(', ')} (seg ${segImages}, val ${valImages} images; ${method})`,
);
log(`wrote ${relative(ROOT, outFile) || outFile}, ${relative(ROOT, plotBase)}.svg, .png`);
if (!ok) fail('a summary count does not equal the images seen (see "commands" in the JSON)');
