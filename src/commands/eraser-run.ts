import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runEraser, writeTokenF1Plot } from '../benchmarks/eraser.js';
import { fileIdentity } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { loadEraserData, MOVIES_CLASSES } from '../datasets/eraser.js';
import { EMBEDDED } from '../embedded.js';
import { readInputFile } from '../formats/host-tensor.js';
import { loadMethods } from '../methods/plugins.js';
import { forwardPrecision } from '../models/forward-precision.js';
import { loadBert } from '../models/load.js';
import { WordPieceTokenizer } from '../text/wordpiece.js';
import { checkOutputPath, writeJsonAtomic } from '../util/files.js';
import { applyForward, defaultOutDir, shardFromArgs, startBackend } from './common.js';
import { type EraserArgs, WEIGHT_NAMES } from './eraser.js';
import { UsageError } from './options.js';

interface BertFiles {
  config: string;
  weights: string;
  vocab: string;
  /** The pipeline's model_params.json, when present (max_length, classes). */
  params?: { max_length?: number; evidence_classifier?: { classes?: string[] } };
}

export function resolveBertFiles(
  args: Pick<EraserArgs, 'model-dir' | 'model-config' | 'weights' | 'vocab'>,
  embeddedDir: string,
): BertFiles {
  const dir = args['model-dir'] ?? (args['model-config'] || args.weights || args.vocab ? undefined : embeddedDir);
  const config = args['model-config'] ?? (dir && join(dir, 'config.json'));
  const vocab = args.vocab ?? (dir && join(dir, 'vocab.txt'));
  const weights = args.weights ?? (dir && WEIGHT_NAMES.map((n) => join(dir, n)).find((f) => existsSync(f)));
  if (!config || !vocab) throw new UsageError('give --model-dir DIR, or --model-config, --weights and --vocab');
  if (!weights) throw new UsageError(`${dir}: no weights found (expected one of ${WEIGHT_NAMES.join(', ')})`);
  const paramsFile = dir && join(dir, 'model_params.json');
  const params =
    paramsFile && existsSync(paramsFile) ? JSON.parse(readInputFile(paramsFile).toString('utf8')) : undefined;
  return { config, weights, vocab, params };
}

export async function runEraserCommand(args: EraserArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  if (args.json) checkOutputPath(args.json, 'file', '--json');
  const { methods } = await loadMethods(args.method);
  const backend = await startBackend(args.backend, (s) => process.stderr.write(`${s}\n`));
  applyForward(args.forward, (s) => process.stderr.write(`${s}\n`));
  const embedded = !args['data-dir'];
  const dataDir = args['data-dir'] ?? EMBEDDED.eraser.data;
  if (embedded) process.stderr.write(`data: embedded synthetic movie reviews (${dataDir})\n`);
  const files = resolveBertFiles(args, EMBEDDED.eraser.model);
  const model = loadBert(files.config, files.weights);
  const cfg = model.config;
  const tokenizer = WordPieceTokenizer.fromFile(files.vocab);
  const classes = files.params?.evidence_classifier?.classes ?? MOVIES_CLASSES;
  // The paper's 512, or as many positions as the model has when it has fewer.
  const maxLength = args['max-length'] ?? files.params?.max_length ?? Math.min(512, cfg.max_position_embeddings);
  if (maxLength > cfg.max_position_embeddings) {
    throw new UsageError(
      `--max-length ${maxLength} exceeds the model's max_position_embeddings (${cfg.max_position_embeddings}, ${files.config})`,
    );
  }
  const { annotations, documents } = loadEraserData(dataDir, args.split, { classes });
  const shard = shardFromArgs(args.shard);
  const outDir = args.out ? resolve(args.out) : defaultOutDir('eraser', cfg.name, args.name, shard);
  const identity = {
    command: 'eraser',
    model: cfg,
    weights: fileIdentity(files.weights),
    vocab: fileIdentity(files.vocab),
    data: resolve(dataDir),
    split: args.split,
    classes,
    methods: methods.map((m) => m.name),
    maxLength,
    startLayer: args['start-layer'] ?? null,
    resetPerK: args['reset-per-k'],
    limit: args.limit ?? null,
    // The float64 forward moves the ill-conditioned maps: a run does not resume under the other forward (absent for
    // f32, as before the option reached BERT).
    ...(forwardPrecision() === 'f64' ? { forward: 'f64' } : {}),
    shard: shard ?? null,
  };
  process.stderr.write(
    `backend ${backend.name}; BERT ${cfg.num_hidden_layers} layers, hidden ${cfg.hidden_size}; ${annotations.length} ${args.split} documents; max length ${maxLength}; output ${outDir}\n`,
  );
  const summary = await withRunLock(outDir, 'bench eraser', args['steal-lock'], () =>
    runEraser({
      model,
      tokenizer,
      annotations,
      documents,
      classes,
      methods,
      maxLength,
      startLayer: args['start-layer'],
      accumulate: !args['reset-per-k'],
      outDir,
      identity,
      limit: args.limit,
      shard,
      resume: args.resume,
      quiet: args.quiet,
    }).then(async (s) => {
      await writeTokenF1Plot(outDir, s);
      return s;
    }),
  );
  if (args.json) writeJsonAtomic(resolve(args.json), summary);
  console.log(
    `\n${summary.documents} documents, classifier accuracy ${(100 * summary.accuracy).toFixed(1)}% (the gold class is explained)`,
  );
  const ks = summary.ks;
  console.log(`| method | ${ks.map((k) => `k=${k}`).join(' | ')} |\n|---|${ks.map(() => '---').join('|')}|`);
  for (const [m, r] of Object.entries(summary.methods))
    console.log(`| ${m} | ${ks.map((k) => r.tokenF1[k]!.toFixed(3)).join(' | ')} |`);
  console.log(
    `\ntoken-F1 = token-level instance-macro F1 of ERASER's metrics.py; wrote ${outDir}/summary.json, token_f1.csv, token_f1.svg/.png, <method>/identifier_results_<k>.json, <method>/scores_<k>.json`,
  );
}
