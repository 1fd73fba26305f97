import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { normalizeCHW } from '../data/image.js';
import * as tf from '../engine/tf.js';
import { type ExplanationReader, readExplanations } from '../formats/expl-hdf5.js';
import { FileFormatError } from '../formats/host-tensor.js';
import type { VisionTransformer } from '../models/vit.js';
import { writeLineChart } from '../reports/plots.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/files.js';
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
import { beginRun, type RunControl } from './run-dir.js';

/**
 * The positive/negative perturbation test (docs/benchmarks.md#perturbation-test) over explanation files written by
 * `bench visualize` or by the official `generate_visualizations.py`: per file (one method and vis class)
 * and per setting, the classifier's top-1 accuracy against the ground-truth label after removing
 * 10 %, 20 %, … 90 % of the pixels, highest relevance first (positive) or lowest first (negative),
 * and the AUC as the authors compute it. Unlike the official script, both settings work.
 */
export type Setting = 'negative' | 'positive';

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
  batchSize: number;
  onBatchDone?: (key: string, nextRow: number) => void;
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

interface PerturbState {
  runs: Record<string, { nextRow: number; acc: PerturbationAccumulatorState }>;
}

const keyOf = (i: VisInput, s: Setting) => `${i.method}/${i.visClass}/${s}`;

export async function runPerturbation(opts: PerturbRunOptions): Promise<PerturbSummary> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { model, outDir } = opts;
  const c = model.config;
  const statePath = join(outDir, 'state.json');
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
    let state: PerturbState;
    if (beginRun(outDir, opts.identity, opts.resume, 'state.json')) {
      state = JSON.parse(readFileSync(statePath, 'utf8')) as PerturbState;
      log(`resuming ${outDir}`);
    } else {
      state = { runs: {} };
      for (const i of opts.inputs)
        for (const s of opts.settings)
          state.runs[keyOf(i, s)] = { nextRow: 0, acc: new PerturbationAccumulator().toJSON() };
      writeJsonAtomic(statePath, state);
    }
    const rowsOf = (i: VisInput) => Math.min(readers.get(i.file)!.rows, opts.limit ?? Number.POSITIVE_INFINITY);
    const total = opts.inputs.reduce((n, i) => n + rowsOf(i) * opts.settings.length, 0);
    const doneRows = Object.values(state.runs).reduce((n, r) => n + r.nextRow, 0);
    const progress = new Progress('perturb', total, doneRows, opts.quiet);
    let processed = doneRows;
    const classify = (batch: Float32Array, b: number): Float32Array =>
      tf.tidy(() => {
        const x = tf.tensor4d(batch, [b, c.in_chans, c.img_size, c.img_size]);
        return model.head(model.forward(x), c.final_norm_eps).logits.dataSync() as Float32Array;
      });
    const normalize = (chw: Float32Array) => normalizeCHW(chw, c.mean, c.std);
    for (const input of opts.inputs) {
      const r = readers.get(input.file)!;
      const n = rowsOf(input);
      for (const setting of opts.settings) {
        const key = keyOf(input, setting);
        const run = state.runs[key]!;
        const acc = PerturbationAccumulator.fromJSON(run.acc);
        for (let start = run.nextRow; start < n; start += opts.batchSize) {
          const count = Math.min(opts.batchSize, n - start);
          const rows = r.readRows(start, count);
          const bad = rows.target.find((t) => t < 0 || t >= c.num_classes);
          if (bad !== undefined) {
            throw new FileFormatError(
              input.file,
              `holds label ${bad}, but the model '${c.name}' has ${c.num_classes} classes (a file written for another data set or model?)`,
            );
          }
          const results = await perturbBatch(rows.image, rows.vis, {
            negative: setting === 'negative',
            ties: opts.ties,
            classify,
            normalize,
            labels: rows.target,
          });
          acc.add(results);
          run.nextRow = start + count;
          run.acc = acc.toJSON();
          writeJsonAtomic(statePath, state);
          opts.onBatchDone?.(key, run.nextRow);
          processed += count;
          progress.update(processed, `${key}: AUC so far ${acc.auc().toFixed(2)}`);
        }
      }
    }
    progress.stop();
    const summary = summarize(opts, state, c.img_size * c.img_size);
    await writeOutputs(outDir, summary);
    return summary;
  } finally {
    for (const r of readers.values()) r.close();
  }
}

function summarize(opts: PerturbRunOptions, state: PerturbState, numPixels: number): PerturbSummary {
  const results: PerturbSummary['results'] = {};
  const files: Record<string, string> = {};
  for (const input of opts.inputs) {
    files[`${input.method}/${input.visClass}`] = input.file;
    for (const s of opts.settings) {
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
    model: opts.model.config.name,
    ties: opts.ties,
    steps: [0, ...PERTURBATION_STEPS],
    pixelsRemoved: [0, ...PERTURBATION_STEPS.map((s) => pixelsToRemove(numPixels, s))],
    metrics: PERTURBATION_METRICS,
    results,
    files,
  };
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
  const points: { x: number; y: number; series: string; panel: string }[] = [];
  for (const [m, byVis] of Object.entries(s.results)) {
    for (const [v, bySetting] of Object.entries(byVis)) {
      for (const [setting, r] of Object.entries(bySetting) as [Setting, SettingResult][]) {
        r.accuracy.forEach((a, i) => {
          rows.push([m, v, setting, s.steps[i]!, s.pixelsRemoved[i]!, a, r.counts[i]!, r.images]);
          points.push({ x: s.steps[i]!, y: a, series: m, panel: `${setting} perturbation, ${v} class` });
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
  await writeLineChart(join(outDir, 'perturbation'), points, {
    title: `Perturbation test (${s.model})`,
    xTitle: 'fraction of pixels removed',
    yTitle: 'top-1 accuracy',
    yDomain: [0, 1],
  });
}
