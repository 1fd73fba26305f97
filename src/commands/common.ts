import { statSync } from 'node:fs';
import type { Argv } from 'yargs';
import { defaultRunDir } from '../benchmarks/run-dir.js';
import { resolveShard, type Shard, shardSuffix } from '../benchmarks/shards.js';
import { EMBEDDED } from '../embedded.js';
import { BACKEND_CHOICES, type BackendChoice, type BackendInfo, initBackend } from '../engine/backend.js';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import { loadVit, type ModelSpec } from '../models/load.js';
import type { VisionTransformer } from '../models/vit.js';
import { VIT_PRESET_NAMES } from '../models/vit-config.js';

/** Options every model-running command shares. */
export interface ModelArgs {
  model?: string;
  'model-config'?: string;
  weights?: string;
  norm: 'config' | 'half' | 'imagenet';
  backend: BackendChoice;
}

export function withModelOptions<T>(y: Argv<T>) {
  return y
    .option('model', {
      type: 'string',
      describe: `model preset (${VIT_PRESET_NAMES.join(', ')}); or use --model-config. With no model options: the embedded default model`,
    })
    .option('model-config', {
      type: 'string',
      describe:
        'model config JSON with timm names (img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, num_classes, optional mean/std)',
    })
    .option('weights', {
      type: 'string',
      describe:
        'checkpoint: .safetensors (F32/F16/BF16), PyTorch .pth/.bin (zip or legacy; {"model"}/{"state_dict"} wrappers), or Google ViT .npz',
    })
    .option('norm', {
      choices: ['config', 'half', 'imagenet'] as const,
      default: 'config' as const,
      describe:
        "input normalisation: the config's mean/std, 'half' (0.5/0.5, the reference notebooks; quirk Q23 for DeiT) or 'imagenet'",
    })
    .option('backend', {
      choices: BACKEND_CHOICES,
      default: 'auto' as BackendChoice,
      describe: 'TensorFlow.js backend; auto = native GPU package, then native CPU, then wasm, then cpu',
    });
}

export async function startBackend(choice: BackendChoice, log: (s: string) => void): Promise<BackendInfo> {
  const info = await initBackend(choice);
  log(`backend: ${info.description}`);
  return info;
}

/**
 * The model the options name, or the embedded default model when none of --model, --model-config and
 * --weights is given.
 */
export function loadModelFromArgs(
  args: ModelArgs,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): {
  model: VisionTransformer;
  spec: ModelSpec;
} {
  let spec: ModelSpec;
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
  return { model: loadVit(spec), spec };
}

/** A user-facing failure: printed as one line, no stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
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

/** The --shard option of seg, visualize and eraser. */
export const SHARD_OPTION = {
  type: 'string',
  describe:
    'K/N: process items K, K+N, K+2N, … of the data (join the shards with bench merge). Default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with BENCH_SHARD_COUNT; 0/1 = everything',
} as const;

/** The --workers option: data parallelism over worker threads (the wasm backend is single-threaded in Node). */
export const WORKERS_OPTION = {
  type: 'number',
  default: 1,
  describe:
    'worker threads, each with its own backend and copy of the model; images are split among them and the outputs are identical for any N (use one per core on wasm)',
} as const;

/** results/<command>/<model>/<name or timestamp>[-shard-K-of-N]. */
export function defaultOutDir(command: string, model: string, name: string | undefined, shard?: Shard): string {
  return `${defaultRunDir(command, model, name)}${shardSuffix(shard)}`;
}
