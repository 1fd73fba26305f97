import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mergeEraserShards, writeTokenF1Plot } from '../benchmarks/eraser.js';
import { mergePerturbationShards, perturbJson } from '../benchmarks/perturbation.js';
import { type RunIdentity, readRunIdentity } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { mergeSegmentationShards } from '../benchmarks/segmentation.js';
import { checkShardSet, type ShardRun } from '../benchmarks/shards.js';
import type { VisualizeSummary } from '../benchmarks/visualize.js';
import { loadEraserData } from '../datasets/eraser.js';
import { mergeExplanationFiles } from '../formats/expl-hdf5.js';
import { checkOutputPath, writeJsonAtomic } from '../util/files.js';
import type { MergeArgs } from './merge.js';
import { UsageError } from './options.js';

/** Relative paths of the explanation files under a visualize output folder. */
function explanationFiles(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return out;
  for (const method of readdirSync(dir)) {
    const m = join(dir, method);
    if (!statSync(m).isDirectory()) continue;
    for (const vis of readdirSync(m))
      if (existsSync(join(m, vis, 'results.hdf5'))) out.push(join(method, vis, 'results.hdf5'));
  }
  return out.sort();
}

const FINAL_FILE: Record<string, (id: RunIdentity) => string> = {
  seg: () => 'summary.json',
  eraser: () => 'summary.json',
  perturb: () => 'summary.json',
  visualize: (id) => `visualize-${id.visClass}.json`,
};

export async function runMerge(args: MergeArgs, log: (s: string) => void = (s) => console.log(s)): Promise<string[]> {
  if (args.shards.length === 0) throw new UsageError('give the shard output folders to merge');
  checkOutputPath(args.out, 'folder', 'the merged output');
  if (args.json) checkOutputPath(args.json, 'file', '--json');
  const dirs = args.shards.map((s) => resolve(s));
  for (const d of dirs) if (!existsSync(d)) throw new UsageError(`${d}: shard folder not found`);
  const out = resolve(args.out);
  if (dirs.includes(out)) throw new UsageError(`${out}: the merged output must not be one of the shards`);
  const command = readRunIdentity(dirs[0]!)?.command;
  const final = command ? FINAL_FILE[command] : undefined;
  if (!final)
    throw new UsageError(
      `${dirs[0]}: not the output of bench seg, visualize, perturb or eraser run with --shard (no run.json naming one of those commands)`,
    );
  if (args.json && command === 'visualize')
    throw new UsageError('--json: bench visualize writes no --json file, so its merge has none either');
  const { shards, identity } = checkShardSet(dirs, final);
  mkdirSync(out, { recursive: true });
  return withRunLock(out, 'bench merge', args['steal-lock'], () =>
    mergeInto(args, out, command!, shards, identity, log),
  );
}

async function mergeInto(
  args: MergeArgs,
  out: string,
  command: string,
  shards: readonly ShardRun[],
  identity: RunIdentity,
  log: (s: string) => void,
): Promise<string[]> {
  if (command === 'seg') {
    const s = mergeSegmentationShards(out, shards, identity);
    log(`${out}: ${s.images} images from ${shards.length} shards (summary.json, summary.md, per_image.csv)`);
    if (args.json) writeJsonAtomic(resolve(args.json), s);
    return [join(out, 'summary.json')];
  }
  if (command === 'eraser') {
    const { annotations } = loadEraserData(identity.data as string, identity.split as 'test', {
      classes: identity.classes as string[] | undefined,
    });
    const s = mergeEraserShards(out, shards, identity, annotations);
    await writeTokenF1Plot(out, s);
    log(`${out}: ${s.documents} documents from ${shards.length} shards (summary.json, token_f1.csv, per-method files)`);
    if (args.json) writeJsonAtomic(resolve(args.json), s);
    return [join(out, 'summary.json')];
  }
  if (command === 'perturb') {
    const s = await mergePerturbationShards(out, shards, identity);
    const images = Object.values(s.results).flatMap((byVis) =>
      Object.values(byVis).map((r) => (r.negative ?? r.positive)?.images ?? 0),
    );
    log(
      `${out}: ${images.join(', ')} images per file from ${shards.length} shards (summary.json, summary.md, steps.csv, perturbation.svg/.png)`,
    );
    if (args.json) writeJsonAtomic(resolve(args.json), perturbJson(s));
    return [join(out, 'summary.json')];
  }
  return mergeVisualize(out, shards, identity, log);
}

async function mergeVisualize(
  out: string,
  shards: readonly ShardRun[],
  identity: RunIdentity,
  log: (s: string) => void,
): Promise<string[]> {
  const files = [...new Set(shards.flatMap((s) => explanationFiles(s.dir)))];
  const written: string[] = [];
  for (const rel of files) {
    const missing = shards.filter((s) => !existsSync(join(s.dir, rel)));
    if (missing.length)
      throw new UsageError(
        `${rel} is missing from ${missing.map((s) => s.dir).join(', ')}: every shard must hold the same methods and vis classes`,
      );
    const target = join(out, rel);
    const { rows } = await mergeExplanationFiles(
      target,
      shards.map((s) => join(s.dir, rel)),
    );
    log(`${target}: ${rows} rows from ${shards.length} shards`);
    written.push(target);
  }
  const summaryName = FINAL_FILE.visualize!(identity);
  const parts = shards.map((s) => JSON.parse(readFileSync(join(s.dir, summaryName), 'utf8')) as VisualizeSummary);
  const images = parts.reduce((n, p) => n + p.images, 0);
  const first = parts[0]!;
  const summary: VisualizeSummary = {
    ...first,
    shard: null,
    images,
    files: Object.fromEntries(Object.keys(first.files).map((m) => [m, join(out, m, first.visClass, 'results.hdf5')])),
    constantMaps: Object.fromEntries(
      Object.keys(first.constantMaps).map((m) => [m, parts.reduce((n, p) => n + (p.constantMaps[m] ?? 0), 0)]),
    ),
    secondsPerImage: images ? parts.reduce((t, p) => t + p.secondsPerImage * p.images, 0) / images : 0,
  };
  writeJsonAtomic(join(out, 'run.json'), identity);
  writeJsonAtomic(join(out, summaryName), summary);
  return written;
}
