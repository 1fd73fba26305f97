import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { EraserSummary } from '../benchmarks/eraser.js';
import type { PerturbSummary } from '../benchmarks/perturbation.js';
import type { SegSummary } from '../benchmarks/segmentation.js';
import type { VisualizeSummary } from '../benchmarks/visualize.js';
import { FileFormatError } from '../formats/host-tensor.js';

/**
 * Finds the finished runs under a results folder, whichever layout made them: the default
 * `results/<command>/<model>/<run>/`, a regression run's `<dir>/<command>/<model>/<run>/`, or a single
 * run folder given directly. A run is finished when its final summary exists (the commands write it
 * atomically, last), so interrupted runs and partial shards are never compared.
 */
export type BenchmarkName = 'segmentation' | 'perturbation' | 'eraser';

interface RunBase {
  /** The run folder. */
  dir: string;
  /** The run folder relative to the results folder searched (for tables). */
  label: string;
  /** When its summary was written: newest first wins. */
  mtimeMs: number;
}

export type BenchmarkRun =
  | (RunBase & { benchmark: 'segmentation'; summary: SegSummary })
  | (RunBase & { benchmark: 'perturbation'; summary: PerturbSummary })
  | (RunBase & { benchmark: 'eraser'; summary: EraserSummary });

export type VisualizeRun = RunBase & { benchmark: 'visualize'; summary: VisualizeSummary; file: string };

export interface ResultsIndex {
  root: string;
  runs: BenchmarkRun[];
  visualize: VisualizeRun[];
  /** Summary files that could not be read (reported, not fatal: one bad folder must not hide the rest). */
  unreadable: { file: string; reason: string }[];
}

const MAX_DEPTH = 6;
const BENCHMARKS = new Set<string>(['segmentation', 'perturbation', 'eraser']);

/** Every finished run under `root`, newest first within each benchmark. */
export function indexResults(root: string): ResultsIndex {
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new FileFormatError(root, 'not a results folder (no such folder)');
  const index: ResultsIndex = { root, runs: [], visualize: [], unreadable: [] };
  const walk = (dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < MAX_DEPTH && e !== 'node_modules' && !e.startsWith('.')) walk(p, depth + 1);
      } else if (e === 'summary.json' || /^visualize-(top|target)\.json$/.test(e)) {
        addSummary(index, p, dir, st.mtimeMs);
      }
    }
  };
  walk(root, 0);
  const newestFirst = (a: RunBase, b: RunBase) => b.mtimeMs - a.mtimeMs || a.dir.localeCompare(b.dir);
  index.runs.sort(newestFirst);
  index.visualize.sort(newestFirst);
  return index;
}

function addSummary(index: ResultsIndex, file: string, dir: string, mtimeMs: number): void {
  let s: { benchmark?: unknown; model?: unknown; shard?: { count?: number } | null };
  try {
    s = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    index.unreadable.push({ file, reason: (e as Error).message });
    return;
  }
  if (typeof s !== 'object' || s === null || typeof s.model !== 'string') return;
  // A shard holds part of the data: only the merged output may be compared.
  if (s.shard && (s.shard.count ?? 1) > 1) return;
  const label = relative(index.root, dir) || '.';
  if (s.benchmark === 'visualize') {
    index.visualize.push({ benchmark: 'visualize', summary: s as VisualizeSummary, dir, label, mtimeMs, file });
  } else if (typeof s.benchmark === 'string' && BENCHMARKS.has(s.benchmark)) {
    index.runs.push({ benchmark: s.benchmark, summary: s, dir, label, mtimeMs } as BenchmarkRun);
  }
}

/** The newest finished run of a benchmark for a model (any model when `model` is undefined). */
export function latestRun<B extends BenchmarkName>(
  index: ResultsIndex,
  benchmark: B,
  model?: string,
): Extract<BenchmarkRun, { benchmark: B }> | undefined {
  return index.runs.find((r) => r.benchmark === benchmark && (model === undefined || r.summary.model === model)) as
    | Extract<BenchmarkRun, { benchmark: B }>
    | undefined;
}
