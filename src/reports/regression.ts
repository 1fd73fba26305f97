import { existsSync, readFileSync } from 'node:fs';
import { FileFormatError } from '../formats/host-tensor.js';
import { FORWARD_CHOICES, type ForwardPrecision } from '../models/forward-precision.js';
import { type BenchmarkName, type BenchmarkRun, latestRun, type ResultsIndex } from './results-index.js';

/**
 * Expected benchmark numbers (the paper's, or a baseline of our own) and their comparison with results.
 *
 * File layout (configs/paper.json, results/embedded-baseline.json):
 *   { suite, title, source, benchmarks: { <segmentation|perturbation|eraser>: {
 *       model, images | documents, defaultTolerance, numbers: { …nested… : { expected, tolerance } } } } }
 * The nesting mirrors each benchmark's summary.json:
 *   segmentation  numbers[method][metric]          ← summary.methods[method][metric]
 *   perturbation  numbers[method][visClass][setting] ← summary.results[method][visClass][setting].auc
 *   eraser        numbers[method].tokenF1[k]       ← summary.methods[method].tokenF1[k]
 * Every number carries its own tolerance: a result passes when |got − expected| ≤ tolerance.
 */
export interface ExpectedNumber {
  expected: number;
  tolerance: number;
  /** Why this number is here or why its tolerance is what it is (optional). */
  note?: string;
}

export interface NestedNumbers {
  [key: string]: NestedNumbers | ExpectedNumber;
}

export interface ExpectedBenchmark {
  model: string;
  /** The data-set size the numbers were measured on (seg/perturbation images); a run of another size fails. */
  images?: number;
  /** The same for eraser (documents). */
  documents?: number;
  units?: string;
  /** Tolerance given to numbers that `--update` adds. */
  defaultTolerance?: number;
  numbers: NestedNumbers;
  [extra: string]: unknown;
}

export interface ExpectedFile {
  suite: string;
  title?: string;
  source?: string;
  /** The backend a baseline was made with (numbers of other backends can differ in the last digits). */
  backend?: string;
  /**
   * Tolerances for results of other backends, measured against `backend`: per backend name, keys
   * `<benchmark>.<method>` or `<benchmark>`, the most specific one applying. A number is held to the larger of
   * its own tolerance and this one.
   */
  backendTolerances?: Record<string, { source?: string; tolerances: Record<string, number> }>;
  /**
   * The forward precision a baseline was made with (`--forward`: f32 or f64); the embedded runs of `bench regress`
   * use it unless BENCH_FORWARD says otherwise. The ill-conditioned methods' numbers depend on it.
   */
  forward?: ForwardPrecision;
  benchmarks: Partial<Record<BenchmarkName, ExpectedBenchmark>>;
  [extra: string]: unknown;
}

/** How deep each benchmark's numbers nest, and what the levels are called (for messages and tables). */
const LEVELS: Record<BenchmarkName, string[]> = {
  segmentation: ['method', 'metric'],
  perturbation: ['method', 'vis class', 'setting'],
  eraser: ['method', 'tokenF1', 'k'],
};

const DEFAULT_TOLERANCE: Record<BenchmarkName, number> = { segmentation: 0.01, perturbation: 0.01, eraser: 1e-4 };

export interface Expectation {
  benchmark: BenchmarkName;
  model: string;
  path: string[];
  expected: number;
  tolerance: number;
}

export function readExpectedFile(file: string): ExpectedFile {
  if (!existsSync(file)) throw new FileFormatError(file, 'no such file');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`);
  }
  const f = raw as ExpectedFile;
  if (typeof f !== 'object' || f === null || typeof f.benchmarks !== 'object' || f.benchmarks === null)
    throw new FileFormatError(file, 'expected an object with "suite" and "benchmarks"');
  for (const [name, b] of Object.entries(f.benchmarks)) {
    if (!(name in LEVELS))
      throw new FileFormatError(
        file,
        `unknown benchmark "${name}" (expected one of ${Object.keys(LEVELS).join(', ')})`,
      );
    if (!b || typeof b.model !== 'string') throw new FileFormatError(file, `benchmarks.${name}: no "model" name`);
    if (typeof b.numbers !== 'object' || b.numbers === null)
      throw new FileFormatError(file, `benchmarks.${name}: no "numbers" object`);
  }
  if (f.forward !== undefined && !FORWARD_CHOICES.includes(f.forward))
    throw new FileFormatError(file, `"forward" must be "f32" or "f64", not ${JSON.stringify(f.forward)}`);
  for (const [backend, bt] of Object.entries(f.backendTolerances ?? {})) {
    const where = `backendTolerances.${backend}`;
    if (typeof bt !== 'object' || bt === null || typeof bt.tolerances !== 'object' || bt.tolerances === null)
      throw new FileFormatError(
        file,
        `${where}: expected { "source", "tolerances": { "<benchmark>[.<method>]": number } }`,
      );
    for (const [k, v] of Object.entries(bt.tolerances)) {
      if (!(k.split('.')[0]! in LEVELS))
        throw new FileFormatError(file, `${where}.tolerances: "${k}" does not start with a benchmark name`);
      if (typeof v !== 'number' || !(v >= 0))
        throw new FileFormatError(file, `${where}.tolerances.${k}: must be a number ≥ 0, found ${JSON.stringify(v)}`);
    }
  }
  expectations(f, file); // validates every leaf
  return f;
}

/** The tolerance of an expected number for results of `backend` (see ExpectedFile.backendTolerances). */
function toleranceOn(f: ExpectedFile, e: Expectation, backend: string | undefined): number {
  if (!backend || !f.backend || backend === f.backend) return e.tolerance;
  const t = f.backendTolerances?.[backend]?.tolerances;
  const other = t?.[`${e.benchmark}.${e.path[0]}`] ?? t?.[e.benchmark];
  return other === undefined ? e.tolerance : Math.max(e.tolerance, other);
}

function isLeaf(v: NestedNumbers | ExpectedNumber): v is ExpectedNumber {
  return typeof v === 'object' && v !== null && 'expected' in v;
}

/** Every expected number in file order. `file` names the source in errors. */
export function expectations(f: ExpectedFile, file = 'expected numbers'): Expectation[] {
  const out: Expectation[] = [];
  for (const [name, b] of Object.entries(f.benchmarks) as [BenchmarkName, ExpectedBenchmark][]) {
    const depth = LEVELS[name].length;
    const walk = (node: NestedNumbers, path: string[]) => {
      for (const [k, v] of Object.entries(node)) {
        const p = [...path, k];
        const where = `benchmarks.${name}.numbers.${p.join('.')}`;
        if (isLeaf(v)) {
          if (p.length !== depth)
            throw new FileFormatError(
              file,
              `${where}: a number at depth ${p.length}, expected ${LEVELS[name].join(' → ')}`,
            );
          if (typeof v.expected !== 'number' || !Number.isFinite(v.expected))
            throw new FileFormatError(
              file,
              `${where}: "expected" must be a finite number, found ${JSON.stringify(v.expected)}`,
            );
          if (typeof v.tolerance !== 'number' || !(v.tolerance >= 0))
            throw new FileFormatError(
              file,
              `${where}: "tolerance" must be a number ≥ 0, found ${JSON.stringify(v.tolerance)}`,
            );
          out.push({ benchmark: name, model: b.model, path: p, expected: v.expected, tolerance: v.tolerance });
        } else if (typeof v === 'object' && v !== null && p.length < depth) {
          walk(v, p);
        } else {
          throw new FileFormatError(
            file,
            `${where}: expected ${p.length < depth ? 'an object' : '{ expected, tolerance }'}`,
          );
        }
      }
    };
    walk(b.numbers, []);
  }
  return out;
}

/** The number at `path` in a run's summary, if the run has it. */
export function valueInRun(run: BenchmarkRun, path: readonly string[]): number | undefined {
  let v: unknown;
  if (run.benchmark === 'segmentation') {
    v = (run.summary.methods[path[0]!] as unknown as Record<string, unknown> | undefined)?.[path[1]!];
  } else if (run.benchmark === 'perturbation') {
    v = run.summary.results[path[0]!]?.[path[1]!]?.[path[2] as 'negative' | 'positive']?.auc;
  } else {
    const m = run.summary.methods[path[0]!] as unknown as Record<string, Record<string, unknown>> | undefined;
    v = m?.[path[1]!]?.[path[2]!];
  }
  return typeof v === 'number' ? v : undefined;
}

/** Images (or documents) a run measured, for the data-size check. */
export function runSize(run: BenchmarkRun, path: readonly string[]): number {
  if (run.benchmark === 'segmentation') return run.summary.images;
  if (run.benchmark === 'eraser') return run.summary.documents;
  const r = run.summary.results[path[0]!]?.[path[1]!];
  return (r?.negative ?? r?.positive)?.images ?? 0;
}

export type RowStatus = 'ok' | 'FAIL' | 'MISSING';

export interface RegressionRow extends Expectation {
  got?: number;
  delta?: number;
  status: RowStatus;
  /** The run folder the number came from. */
  run?: string;
  note?: string;
}

export interface RegressionResult {
  suite: string;
  title: string;
  expectedFile: string;
  resultsDir: string;
  rows: RegressionRow[];
  failed: number;
  missing: number;
  /** Run folders used, per benchmark. */
  runs: { benchmark: BenchmarkName; model: string; label: string; dir: string }[];
  notes: string[];
}

/**
 * Compares every expected number with the newest finished run that has it (runs of the expected model;
 * `modelOverride` replaces the ViT model names, for a paper check of a differently named checkpoint). `methods`:
 * only the expected numbers of these methods; those the expected file lacks are named in a note.
 */
export function compareResults(
  f: ExpectedFile,
  expectedFile: string,
  index: ResultsIndex,
  opts: { modelOverride?: string; backend?: string; methods?: readonly string[] } = {},
): RegressionResult {
  const rows: RegressionRow[] = [];
  const used = new Map<string, RegressionResult['runs'][number]>();
  const all = expectations(f, expectedFile);
  for (const e of all) {
    if (opts.methods && !opts.methods.includes(e.path[0]!)) continue;
    const model = opts.modelOverride && e.benchmark !== 'eraser' ? opts.modelOverride : e.model;
    const row: RegressionRow = { ...e, tolerance: toleranceOn(f, e, opts.backend), model, status: 'MISSING' };
    const run = index.runs.find(
      (r) => r.benchmark === e.benchmark && r.summary.model === model && valueInRun(r, e.path) !== undefined,
    );
    if (!run) {
      const any = latestRun(index, e.benchmark, model);
      row.note = any
        ? `not in the newest ${e.benchmark} run (${any.label})`
        : `no finished ${e.benchmark} run of ${model}`;
      rows.push(row);
      continue;
    }
    used.set(run.dir, { benchmark: e.benchmark, model, label: run.label, dir: run.dir });
    const got = valueInRun(run, e.path)!;
    row.got = got;
    row.delta = got - e.expected;
    row.run = run.label;
    // A tiny allowance so that a number written with 6 decimals still equals itself.
    row.status = Math.abs(row.delta) <= row.tolerance + 1e-9 * Math.max(1, Math.abs(e.expected)) ? 'ok' : 'FAIL';
    const b = f.benchmarks[e.benchmark]!;
    const wantSize = e.benchmark === 'eraser' ? b.documents : b.images;
    const size = runSize(run, e.path);
    if (wantSize !== undefined && size !== wantSize) {
      row.status = 'FAIL';
      row.note = `measured on ${size} ${e.benchmark === 'eraser' ? 'documents' : 'images'}, expected ${wantSize}`;
    }
    rows.push(row);
  }
  const notes: string[] = [];
  const unexpected = opts.methods?.filter((m) => !all.some((e) => e.path[0] === m)) ?? [];
  if (unexpected.length)
    notes.push(
      `${unexpected.join(', ')}: not in the expected file, so not compared (bench regress --update records the numbers of the runs, or give --expected FILE).`,
    );
  if (f.backend && opts.backend && f.backend !== opts.backend) {
    const bt = f.backendTolerances?.[opts.backend];
    notes.push(
      bt
        ? `The expected numbers were made with the ${f.backend} backend and these results with ${opts.backend}: compared with the ${opts.backend} backend's tolerances (${bt.source ?? 'from the expected file'}).`
        : `The expected numbers were made with the ${f.backend} backend and these results with ${opts.backend}, for which the file has no tolerances of its own; numbers that depend on float summation order (full LRP above all) can differ slightly.`,
    );
  }
  for (const u of index.unreadable) notes.push(`Unreadable summary skipped: ${u.file} (${u.reason}).`);
  return {
    suite: f.suite,
    title: f.title ?? f.suite,
    expectedFile,
    resultsDir: index.root,
    rows,
    failed: rows.filter((r) => r.status === 'FAIL').length,
    missing: rows.filter((r) => r.status === 'MISSING').length,
    runs: [...used.values()],
    notes,
  };
}

/** Decimals that show a difference of the size of the tolerance. */
function digitsFor(tolerance: number): number {
  if (!(tolerance > 0)) return 6;
  return Math.min(6, Math.max(2, Math.ceil(-Math.log10(tolerance)) + 1));
}

export function regressionMarkdown(r: RegressionResult): string {
  const lines = [
    `# Regression check: ${r.title}`,
    '',
    `Expected numbers: \`${r.expectedFile}\`. Results: \`${r.resultsDir}\`.`,
    '',
    '| benchmark | method | number | expected | got | delta | tolerance | ok |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of r.rows) {
    const d = digitsFor(row.tolerance);
    const fmt = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(d));
    const delta =
      row.delta === undefined
        ? '–'
        : Math.abs(row.delta) < 0.5 * 10 ** -d
          ? '0'
          : `${row.delta > 0 ? '+' : ''}${row.delta.toFixed(d)}`;
    const status = row.note ? `${row.status} (${row.note})` : row.status;
    lines.push(
      `| ${row.benchmark} | ${row.path[0]} | ${numberLabel(row)} | ${fmt(row.expected)} | ${fmt(row.got)} | ${delta} | ±${row.tolerance} | ${status} |`,
    );
  }
  lines.push('', `**${verdict(r)}**`, '');
  if (r.runs.length) {
    lines.push('Runs compared (the newest finished run of each benchmark and model that has the number):', '');
    for (const u of r.runs) lines.push(`- ${u.benchmark}, ${u.model}: \`${u.label}\``);
    lines.push('');
  }
  for (const n of r.notes) lines.push(`Note: ${n}`, '');
  return lines.join('\n');
}

/** How a number reads in the table: the summary's metric name, the perturbation setting, or k. */
function numberLabel(e: Expectation): string {
  if (e.benchmark === 'perturbation') return `${e.path[2]} AUC, ${e.path[1]} class`;
  if (e.benchmark === 'eraser') return `token-F1 @ k=${e.path[2]}`;
  return e.path.slice(1).join(' / ');
}

export function verdict(r: RegressionResult): string {
  const n = r.rows.length;
  if (r.failed === 0 && r.missing === 0) return `PASS: all ${n} numbers within tolerance`;
  const parts = [];
  if (r.failed) parts.push(`${r.failed} outside tolerance`);
  if (r.missing) parts.push(`${r.missing} missing`);
  return `FAIL: ${parts.join(', ')} (of ${n} numbers)`;
}

/** Every number a run reports, nested as in the expected-file layout. */
function numbersOfRun(run: BenchmarkRun): [string[], number][] {
  const out: [string[], number][] = [];
  if (run.benchmark === 'segmentation') {
    const keys = ['pixelAccuracy', 'mIoU', 'mAP', 'iouBackground', 'iouForeground', 'rowF1'] as const;
    for (const [m, s] of Object.entries(run.summary.methods)) for (const k of keys) out.push([[m, k], s[k]]);
  } else if (run.benchmark === 'perturbation') {
    for (const [m, byVis] of Object.entries(run.summary.results))
      for (const [v, bySetting] of Object.entries(byVis))
        for (const [s, r] of Object.entries(bySetting)) if (r) out.push([[m, v, s], r.auc]);
  } else {
    for (const [m, s] of Object.entries(run.summary.methods))
      for (const [k, v] of Object.entries(s.tokenF1)) out.push([[m, 'tokenF1', k], v]);
  }
  return out;
}

/**
 * A new baseline from the newest runs of the given models: every number they report, rounded to 6
 * decimals (so that the file's diff shows what moved), keeping the tolerances of numbers already in
 * `previous` and giving new ones the benchmark's default tolerance.
 */
export function baselineFromRuns(
  runs: Partial<Record<BenchmarkName, BenchmarkRun>>,
  previous: ExpectedFile | undefined,
  header: Omit<ExpectedFile, 'benchmarks'>,
): ExpectedFile {
  const benchmarks: ExpectedFile['benchmarks'] = {};
  for (const [name, run] of Object.entries(runs) as [BenchmarkName, BenchmarkRun][]) {
    const prev = previous?.benchmarks[name];
    const defaultTolerance = prev?.defaultTolerance ?? DEFAULT_TOLERANCE[name];
    const numbers: NestedNumbers = {};
    const reported = numbersOfRun(run);
    for (const [path, value] of reported) {
      let node = numbers;
      let prevNode: NestedNumbers | ExpectedNumber | undefined = prev?.numbers;
      for (const key of path.slice(0, -1)) {
        node = (node[key] ??= {}) as NestedNumbers;
        prevNode = prevNode && !isLeaf(prevNode) ? prevNode[key] : undefined;
      }
      const last = path.at(-1)!;
      const old = prevNode && !isLeaf(prevNode) ? prevNode[last] : undefined;
      node[last] = {
        expected: Number(value.toFixed(6)),
        tolerance: old && isLeaf(old) ? old.tolerance : defaultTolerance,
      };
    }
    const size =
      run.benchmark === 'eraser'
        ? { documents: run.summary.documents }
        : { images: runSize(run, reported[0]?.[0] ?? []) };
    benchmarks[name] = {
      ...(prev ?? {}),
      model: run.summary.model,
      ...size,
      defaultTolerance,
      run: run.label,
      numbers,
    };
  }
  return { ...header, benchmarks } as ExpectedFile;
}

/** JSON with one line per expected number, so that a baseline's diff shows exactly the numbers that moved. */
export function formatExpectedFile(f: ExpectedFile): string {
  return `${JSON.stringify(f, null, 2).replace(
    /\{\n\s+"expected": ([^,\n]+),\n\s+"tolerance": ([^\n]+)\n\s+\}/g,
    '{ "expected": $1, "tolerance": $2 }',
  )}\n`;
}

/** The paper file's segmentation numbers as { method: { metric: value } } (for tables beside ours). */
export function expectedSegmentationTable(
  f: ExpectedFile,
): Record<string, { pixelAccuracy: number; mIoU: number; mAP: number }> {
  const out: Record<string, Record<string, number>> = {};
  for (const e of expectations(f))
    if (e.benchmark === 'segmentation') (out[e.path[0]!] ??= {})[e.path[1]!] = e.expected;
  return out as Record<string, { pixelAccuracy: number; mIoU: number; mAP: number }>;
}

/** The paper file's perturbation AUCs as { method: { visClass: { negative, positive } } }. */
export function expectedPerturbationTable(
  f: ExpectedFile,
): Record<string, Record<string, { negative?: number; positive?: number }>> {
  const out: Record<string, Record<string, { negative?: number; positive?: number }>> = {};
  for (const e of expectations(f))
    if (e.benchmark === 'perturbation')
      ((out[e.path[0]!] ??= {})[e.path[1]!] ??= {})[e.path[2] as 'negative' | 'positive'] = e.expected;
  return out;
}
