import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { timestampName } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../engine/backend.js';
import { type ForwardPrecision, forwardPrecision } from '../models/forward-precision.js';
import {
  baselineFromRuns,
  compareResults,
  type ExpectedBenchmark,
  type ExpectedFile,
  expectations,
  formatExpectedFile,
  readExpectedFile,
  regressionMarkdown,
  verdict,
} from '../reports/regression.js';
import { type BenchmarkName, type BenchmarkRun, indexResults, latestRun } from '../reports/results-index.js';
import { checkOutputPath, writeFileAtomic, writeJsonAtomic } from '../util/files.js';
import { runEraserCommand } from './eraser-run.js';
import { selectedMethodNames } from './method-selection.js';
import { type ModelArgs, UsageError } from './options.js';
import { runPerturbCommand } from './perturb-run.js';
import { type RegressArgs, SUITE_FILES } from './regress.js';
import { runSegCommand } from './seg-run.js';
import { runVisualizeCommand } from './visualize-run.js';

/** Thrown when numbers are outside tolerance or missing: one error line after the printed table. */
export class RegressionFailure extends Error {}

/**
 * Runs the three embedded benchmarks (segmentation, visualize + perturbation, ERASER), each with every
 * method, into `dir`, in the layout `bench regress --results` reads. Always fresh runs: a cached
 * visualisation from older code would hide a change.
 */
export async function runEmbeddedBenchmarks(
  dir: string,
  backend: BackendChoice,
  quiet: boolean,
  workers = 1,
  method: string[] = ['all'],
  forward: ModelArgs['forward'] = forwardPrecision(),
): Promise<void> {
  const model = { norm: 'config' as const, backend, workers, forward };
  const log = (s: string) => process.stderr.write(`\n== ${s}\n`);
  log(`bench seg (embedded default) → ${join(dir, 'seg')}`);
  await runSegCommand({
    ...model,
    method,
    'start-layer': 1,
    out: join(dir, 'seg', 'embedded'),
    'save-img': 4,
    resume: false,
    quiet,
  });
  const visDir = join(dir, 'visualize', 'embedded');
  log(`bench visualize (embedded default) → ${visDir}`);
  await runVisualizeCommand({
    ...model,
    method,
    'vis-class': 'top',
    'start-layer': 1,
    out: visDir,
    resume: false,
    quiet,
  });
  log(`bench perturb → ${join(dir, 'perturb')}`);
  await runPerturbCommand({
    ...model,
    'vis-dir': visDir,
    pos: false,
    neg: false,
    ties: 'torch',
    'batch-size': 16,
    // The expected numbers were recorded on tfjs; onnxruntime may differ from them on a near-tie.
    'classifier-engine': 'tfjs',
    out: join(dir, 'perturb', 'embedded'),
    resume: false,
    quiet,
  });
  log(`bench eraser (embedded default) → ${join(dir, 'eraser')}`);
  await runEraserCommand({
    split: 'test',
    method,
    'reset-per-k': false,
    out: join(dir, 'eraser', 'embedded'),
    resume: false,
    quiet,
    backend,
    forward,
  });
}

export async function runRegressCommand(args: RegressArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'file', '--out');
  if (args.json) checkOutputPath(args.json, 'file', '--json');
  if (args['run-dir']) checkOutputPath(args['run-dir'], 'folder', '--run-dir');
  const expectedFile = resolve(args.expected ?? SUITE_FILES[args.suite]);
  if (args.update && args.suite === 'paper' && !args.expected)
    throw new UsageError(
      `--update: the paper's numbers are published, not measured; edit ${SUITE_FILES.paper} by hand (or give --expected FILE)`,
    );
  const expected = existsSync(expectedFile) || !args.update ? readExpectedFile(expectedFile) : undefined;

  let resultsDir: string;
  let backendName: string | undefined;
  let forwardUsed: ForwardPrecision | undefined;
  if (args.results) {
    resultsDir = resolve(args.results);
    // The backend the results were made with, when given: the expected file's tolerances for it apply.
    if (args.backend && args.backend !== 'auto') backendName = args.backend;
  } else if (args.suite === 'embedded') {
    resultsDir = resolve(args['run-dir'] ?? join('results', 'regress', `embedded-${timestampName()}`));
    // On the baseline's own backend unless told otherwise: other backends differ in the last digits.
    const recorded = BACKEND_CHOICES.find((b) => b !== 'auto' && b === expected?.backend);
    const backend = args.backend ?? recorded ?? 'auto';
    process.stderr.write(
      `no --results: running the three embedded benchmarks on the ${backend} backend into ${resultsDir}\n`,
    );
    // And with the baseline's forward precision, unless BENCH_FORWARD names one.
    const forward = process.env.BENCH_FORWARD ? forwardPrecision() : (expected?.forward ?? 'f32');
    await withRunLock(resultsDir, 'bench regress', args['steal-lock'], () =>
      runEmbeddedBenchmarks(resultsDir, backend, args.quiet, args.workers, args.method ?? ['all'], forward),
    );
    backendName = (await initBackend(backend)).name;
    forwardUsed = forwardPrecision();
  } else {
    resultsDir = resolve('results');
  }
  const index = indexResults(resultsDir);
  // Only these methods' numbers, when --method is given (the embedded runs made them; with --results, the runs hold
  // them): built-in names, groups, plug-in files or the names of methods the results hold.
  const methods = args.method?.length ? await selectedMethodNames(args.method, index) : undefined;

  if (args.update) {
    const runs: Partial<Record<BenchmarkName, BenchmarkRun>> = {};
    // The baseline's models; with no baseline yet, whatever the newest run of each benchmark used (the
    // embedded runs just made, when --results is not given).
    const benchmarks: BenchmarkName[] = expected
      ? (Object.keys(expected.benchmarks) as BenchmarkName[])
      : ['segmentation', 'perturbation', 'eraser'];
    for (const b of benchmarks) {
      const m = args.model && b !== 'eraser' ? args.model : expected?.benchmarks[b]?.model;
      const run = latestRun(index, b, m);
      if (!run) throw new UsageError(`--update: no finished ${b} run${m ? ` of ${m}` : ''} under ${resultsDir}`);
      runs[b] = run;
    }
    const header: Omit<ExpectedFile, 'benchmarks'> = {
      ...(expected ?? {
        suite: args.suite,
        title: 'Numbers of the embedded default (synthetic data, small trained models shipped in the repo)',
        source:
          'bench regress --suite embedded --update: written from fresh runs of the three embedded benchmarks; update on purpose, and let the diff show what moved',
      }),
      ...(backendName ? { backend: backendName } : {}),
      ...(forwardUsed ? { forward: forwardUsed } : {}),
    };
    delete (header as { benchmarks?: unknown }).benchmarks;
    const next = baselineFromRuns(runs, expected, header);
    if (methods) {
      // A method selection updates those methods only (where the runs have them): the expected file's other
      // numbers are kept, in its order.
      const kept = new Set<string>();
      for (const [b, now] of Object.entries(next.benchmarks) as [BenchmarkName, ExpectedBenchmark][]) {
        const was = expected?.benchmarks[b]?.numbers ?? {};
        const merged: ExpectedBenchmark['numbers'] = {};
        for (const [m, numbers] of Object.entries(was)) {
          const fresh = methods.includes(m) ? now.numbers[m] : undefined;
          if (!fresh) kept.add(m);
          merged[m] = fresh ?? numbers;
        }
        for (const [m, numbers] of Object.entries(now.numbers))
          if (methods.includes(m) && !(m in merged)) merged[m] = numbers;
        now.numbers = merged;
      }
      if (kept.size)
        console.log(
          `kept the expected numbers of ${[...kept].join(', ')} (not updated: not in --method or not in the runs)`,
        );
    }
    writeFileAtomic(expectedFile, formatExpectedFile(next));
    console.log(
      `wrote ${expectedFile} from ${Object.values(runs)
        .map((r) => r!.label)
        .join(', ')} (under ${resultsDir})`,
    );
    return;
  }

  const result = compareResults(expected!, expectedFile, index, {
    modelOverride: args.model,
    backend: backendName,
    methods,
  });
  if (methods && result.rows.length === 0)
    throw new UsageError(
      `--method ${methods.join(', ')}: ${expectedFile} has no numbers of ${methods.length > 1 ? 'these methods' : 'this method'} (it has ${[...new Set(expectations(expected!).map((e) => e.path[0]))].join(', ')}); record them with --update --expected FILE`,
    );
  const md = regressionMarkdown(result);
  const out = resolve(args.out ?? join(resultsDir, `regress-${args.suite}.md`));
  writeFileAtomic(out, md);
  if (args.json) writeJsonAtomic(resolve(args.json), result);
  console.log(md);
  console.log(`wrote ${out}`);
  if (result.failed || result.missing) throw new RegressionFailure(`regression ${verdict(result)}; see ${out}`);
}
