import { statSync } from 'node:fs';
import { defaultRunDir } from '../benchmarks/run-dir.js';
import { resolveShard, type Shard, shardSuffix } from '../benchmarks/shards.js';
import { EMBEDDED } from '../embedded.js';
import { type BackendChoice, type BackendInfo, initBackend } from '../engine/backend.js';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import type { ForwardPrecision } from '../models/forward-precision.js';
import { describeForward } from '../models/host-f64.js';
import { loadVit, type ModelSpec } from '../models/load.js';
import type { VisionTransformer } from '../models/vit.js';
import { traceStart } from '../util/trace.js';
import { type ModelArgs, UsageError } from './options.js';

/** What the commands' run modules share (they load the engine; the command definitions use options.ts). */

export async function startBackend(choice: BackendChoice, log: (s: string) => void): Promise<BackendInfo> {
  traceStart('backend-start');
  const info = await initBackend(choice);
  traceStart('backend-ready');
  log(`backend: ${info.description}`);
  return info;
}

/**
 * The model the options name, or the embedded default model when none of --model, --model-config and
 * --weights is given.
 */
/** Sets the forward precision of this process and of its worker threads (they inherit the environment), and logs it. */
export function applyForward(forward: ForwardPrecision | undefined, log: (s: string) => void): void {
  process.env.BENCH_FORWARD = forward ?? process.env.BENCH_FORWARD ?? 'f32';
  log(`forward: ${describeForward()}`);
}

export function loadModelFromArgs(
  args: ModelArgs,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): {
  model: VisionTransformer;
  spec: ModelSpec;
} {
  let spec: ModelSpec;
  applyForward(args.forward, log);
  if (!args.model && !args['model-config'] && !args.weights) {
    spec = { configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights, norm: args.norm };
    log(`model: embedded default (${EMBEDDED.model.weights})`);
  } else {
    if (!args.weights)
      throw new UsageError(
        '--weights FILE is required with --model/--model-config (safetensors, .pth/.bin or Google .npz)',
      );
    if (!args.model && !args['model-config'])
      throw new UsageError('give the model as --model PRESET or --model-config FILE');
    spec = { configFile: args['model-config'], preset: args.model, weightsFile: args.weights, norm: args.norm };
  }
  // A missing weights file is named before anything else (loadVit then checks the model's memory, then reads).
  try {
    if (statSync(spec.weightsFile).isDirectory()) throw new FileFormatError(spec.weightsFile, 'is a directory');
  } catch (e) {
    throw e instanceof FileFormatError ? e : new FileFormatError(spec.weightsFile, fsErrorReason(e));
  }
  traceStart('model-start');
  const model = loadVit(spec);
  traceStart('model-ready');
  return { model, spec };
}

/**
 * The shard of this process (`--shard K/N`, or a Slurm array task / Kubernetes Indexed Job from the
 * environment), logged with where it came from.
 */
export function shardFromArgs(
  value: string | undefined,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): Shard | undefined {
  const { shard, source } = resolveShard(value);
  if (shard)
    log(`shard ${shard.index}/${shard.count} (from ${source}): items i with i mod ${shard.count} = ${shard.index}`);
  return shard;
}

/** results/<command>/<model>/<name or timestamp>[-shard-K-of-N]. */
export function defaultOutDir(command: string, model: string, name: string | undefined, shard?: Shard): string {
  return `${defaultRunDir(command, model, name)}${shardSuffix(shard)}`;
}
