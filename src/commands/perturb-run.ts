import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type ClassifierEngine,
  describeVisFile,
  perturbJson,
  runPerturbation,
  type Setting,
  type VisInput,
} from '../benchmarks/perturbation.js';
import { fileIdentity, sameIdentity } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { loadOnnxRuntime } from '../engine/onnx.js';
import { loadMethods, pluginFile } from '../methods/plugins.js';
import { findMethod } from '../methods/registry.js';
import { forwardPrecision } from '../models/forward-precision.js';
import { codeVersion } from '../util/code-version.js';
import { checkOutputPath, writeJsonAtomic } from '../util/files.js';
import { defaultOutDir, loadModelFromArgs, shardFromArgs, startBackend } from './common.js';
import { UsageError } from './options.js';
import type { PerturbArgs } from './perturb.js';
import { runVisualizeCommand } from './visualize-run.js';

function readJsonIfAny(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every results.hdf5 under a folder (the visualize layout and the official script's). */
function findVisFiles(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--vis-dir ${dir}: not a folder`);
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e === 'results.hdf5') out.push(p);
    }
  };
  walk(dir);
  if (out.length === 0)
    throw new UsageError(
      `--vis-dir ${dir}: no results.hdf5 found (expected <method>/<top|target>/results.hdf5 from bench visualize)`,
    );
  return out;
}

export async function runPerturbCommand(args: PerturbArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  if (args.json) checkOutputPath(args.json, 'file', '--json');
  const batchSize = args['batch-size'];
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UsageError(`--batch-size ${batchSize}: expected a positive integer (images per classifier batch)`);
  const workers = args.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1)
    throw new UsageError(`--workers ${workers}: expected a positive integer (worker threads)`);
  if (args.limit !== undefined && !(Number.isInteger(args.limit) && args.limit >= 1))
    throw new UsageError(`--limit ${args.limit}: expected a positive integer (images per file)`);
  // Checked before any work: an unknown name or a bad plug-in is one line naming it.
  const selected = args.method?.length ? (await loadMethods(args.method)).methods : undefined;
  const shard = shardFromArgs(args.shard);
  const settings: Setting[] = args.pos === args.neg ? ['negative', 'positive'] : args.neg ? ['negative'] : ['positive'];
  const backend = await startBackend(args.backend, (s) => process.stderr.write(`${s}\n`));
  const engineChoice = args['classifier-engine'] ?? 'auto';
  // Checked before any work: an explicit --classifier-engine onnxruntime without onnxruntime-node is refused here.
  let engine = classifierEngine(engineChoice, backend.name);
  const { model, spec } = loadModelFromArgs(args);
  let files: string[];
  if (args.vis?.length) files = args.vis.map((f) => resolve(f));
  else if (Array.isArray(args['vis-dir']))
    throw new UsageError(`--vis-dir given ${args['vis-dir'].length} times: give one folder (or the files with --vis)`);
  else if (args['vis-dir']) files = findVisFiles(resolve(args['vis-dir']));
  else if (!args.model && !args['model-config'] && !args.weights) {
    files = await embeddedVisFiles(args, model.config.name, spec.weightsFile, backend.name, workers);
  } else {
    throw new UsageError('give --vis FILE or --vis-dir DIR (the output of bench visualize for this model)');
  }
  let inputs: VisInput[] = [];
  for (const f of files) inputs.push(await describeVisFile(f));
  if (selected) {
    // Names, aliases, 'all', 'paper' or plug-in files (their names), in the order given.
    const order = selected.map((m) => m.name);
    const rank = (i: VisInput) => {
      const k = order.indexOf(i.method);
      return k >= 0 ? k : order.indexOf(findMethodName(i.method));
    };
    inputs = inputs.filter((i) => rank(i) >= 0).sort((a, b) => rank(a) - rank(b));
    if (inputs.length === 0)
      throw new UsageError(`no visualisation file of method ${order.join(', ')} among ${files.join(', ')}`);
  }
  const byKey = new Map<string, string>();
  for (const i of inputs) {
    const other = byKey.get(`${i.method}/${i.visClass}`);
    if (other)
      throw new UsageError(
        `${other} and ${i.file} both hold ${i.method}/${i.visClass}: give one file per method and vis class`,
      );
    byKey.set(`${i.method}/${i.visClass}`, i.file);
  }
  const outDir = args.out ? resolve(args.out) : defaultOutDir('perturb', model.config.name, args.name, shard);
  // --resume with 'auto' keeps the engine of the run being resumed (one from before the option existed: tfjs).
  if (args.resume && engineChoice === 'auto') {
    const before = readJsonIfAny(join(outDir, 'run.json')) as { classifierEngine?: string } | undefined;
    if (before && before.classifierEngine !== engine)
      engine = classifierEngine(before.classifierEngine === 'onnxruntime' ? 'onnxruntime' : 'tfjs', backend.name);
  }
  const identity = {
    command: 'perturb',
    model: model.config,
    weights: fileIdentity(spec.weightsFile),
    files: inputs.map((i) => ({ ...i, ...fileIdentity(i.file) })),
    settings,
    ties: args.ties,
    limit: args.limit ?? null,
    // The engine may (rarely: a near-tie) change a decision. Absent for tfjs, as before the option existed.
    ...(engine === 'onnxruntime' ? { classifierEngine: engine } : {}),
    // Not the batch size or the worker count: neither changes a number, so a run may resume with others.
    // `shard` last: bench merge writes the shards' identity with `shard: null` at the end, byte for byte a
    // whole run's.
    shard: shard ?? null,
  };
  process.stderr.write(
    `backend ${backend.name}; classifier ${model.config.name} on ${engine === 'onnxruntime' ? `onnxruntime-node ${loadOnnxRuntime().ort!.env.versions.node} (CPU, 1 thread per worker)` : backend.name}; ${inputs.length} file(s); ${settings.join(' and ')} perturbation; ties: ${args.ties}; output ${outDir}\n`,
  );
  const summary = await withRunLock(outDir, 'bench perturb', args['steal-lock'], () =>
    runPerturbation({
      model,
      inputs,
      settings,
      ties: args.ties,
      batchSize,
      engine,
      outDir,
      identity,
      limit: args.limit,
      shard,
      parallel: { workers, backend: args.backend, spec },
      resume: args.resume,
      quiet: args.quiet,
    }),
  );
  if (args.json) writeJsonAtomic(resolve(args.json), perturbJson(summary));
  console.log(
    '\n| method | vis class | negative AUC | positive AUC | images | steps with ties |\n|---|---|---|---|---|---|',
  );
  for (const [m, byVis] of Object.entries(summary.results)) {
    for (const [v, r] of Object.entries(byVis)) {
      const ties = (r.negative?.boundaryTieSteps ?? 0) + (r.positive?.boundaryTieSteps ?? 0);
      console.log(
        `| ${m} | ${v} | ${r.negative?.auc.toFixed(2) ?? '–'} | ${r.positive?.auc.toFixed(2) ?? '–'} | ${(r.negative ?? r.positive)?.images} | ${ties} |`,
      );
    }
  }
  if (shard) console.log(`\nshard ${shard.index}/${shard.count}: join the shards with bench merge`);
  console.log(`\nwrote ${outDir}/summary.json, summary.md, steps.csv, perturbation.svg, perturbation.png`);
}

/**
 * The embedded default (no --vis/--vis-dir and no model options): the embedded image folder explained by the
 * embedded model, made once and reused by the same code, backend, normalisation, forward precision (--forward) and
 * weights only (made-by.json),
 * so that a code change is never measured on the explanations of older code. The built-ins are explained together
 * into results/visualize/<model>/embedded-default; each plug-in of --method into its own
 * embedded-default-plugin-<name>, whose key also holds the plug-in file's path and SHA-256 (a changed plug-in is
 * explained again; the built-ins' cache is kept). Only the plug-in file itself is hashed: a module it imports is
 * not.
 */
async function embeddedVisFiles(
  args: PerturbArgs,
  modelName: string,
  weightsFile: string,
  backendName: string,
  workers: number,
): Promise<string[]> {
  const { methods } = await loadMethods(args.method?.length ? args.method : ['all']);
  const base = resolve('results', 'visualize', modelName);
  const key = {
    code: codeVersion(),
    backend: backendName,
    norm: args.norm,
    forward: forwardPrecision(),
    weights: fileIdentity(weightsFile),
  };
  const files: string[] = [];
  if (methods.some((m) => pluginFile(m) === undefined))
    files.push(...(await cachedVisualization(args, workers, join(base, 'embedded-default'), ['all'], key)));
  for (const m of methods) {
    const file = pluginFile(m);
    if (file === undefined) continue;
    const plugin = { file, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') };
    const dir = join(base, `embedded-default-plugin-${m.name}`);
    files.push(...(await cachedVisualization(args, workers, dir, [file], { ...key, plugin })));
  }
  return files;
}

/** The results.hdf5 files of a cached visualize run in `visDir`, made first when missing or made under another key. */
async function cachedVisualization(
  args: PerturbArgs,
  workers: number,
  visDir: string,
  method: string[],
  madeBy: object,
): Promise<string[]> {
  const madeByFile = join(visDir, 'made-by.json');
  const same = sameIdentity(readJsonIfAny(madeByFile), madeBy);
  if (!same || !existsSync(join(visDir, 'visualize-top.json'))) {
    if (!same && existsSync(visDir)) {
      process.stderr.write(
        `${visDir} was made by other code, backend, normalisation, forward precision, weights or plug-in file (${madeByFile}); making it again\n`,
      );
      rmSync(visDir, { recursive: true, force: true });
    }
    process.stderr.write(`no --vis/--vis-dir: explaining the embedded image folder first (${visDir})\n`);
    writeJsonAtomic(madeByFile, madeBy);
    await runVisualizeCommand({
      method,
      'vis-class': 'top',
      'start-layer': 1,
      forward: args.forward,
      out: visDir,
      resume: existsSync(join(visDir, 'run.json')),
      quiet: args.quiet,
      norm: args.norm,
      backend: args.backend,
      workers,
      // Every image, also when this perturb run is one shard of a Slurm array or an Indexed Job.
      shard: '0/1',
    });
  }
  return findVisFiles(visDir);
}

/** 'auto': onnxruntime when it loads and the tfjs backend is a CPU one (wasm, cpu), else tfjs. */
function classifierEngine(choice: 'auto' | 'tfjs' | 'onnxruntime', backend: string): ClassifierEngine {
  if (choice === 'tfjs') return 'tfjs';
  const { ort, error } = loadOnnxRuntime();
  if (choice === 'onnxruntime') {
    if (!ort) throw new UsageError(`--classifier-engine onnxruntime: ${error}`);
    return 'onnxruntime';
  }
  return ort && (backend === 'wasm' || backend === 'cpu') ? 'onnxruntime' : 'tfjs';
}

function findMethodName(name: string): string {
  try {
    return findMethod(name).name;
  } catch {
    return name;
  }
}
