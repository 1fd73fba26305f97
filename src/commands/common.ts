import { statSync } from 'node:fs';
import type { Argv } from 'yargs';
import { defaultRunDir } from '../benchmarks/run-dir.js';
import { EMBEDDED } from '../embedded.js';
import {
  activeBackend,
  BACKEND_CHOICES,
  type BackendChoice,
  type BackendInfo,
  initBackend,
} from '../engine/backend.js';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import { loadVit, type ModelSpec, resolveVitConfig } from '../models/load.js';
import { assertFitsBackend } from '../models/memory.js';
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
  // Before a byte of the weights is read: a model the wasm heap cannot hold is refused up front, saying so.
  const cfg = resolveVitConfig(spec);
  try {
    if (statSync(spec.weightsFile).isDirectory()) throw new FileFormatError(spec.weightsFile, 'is a directory');
  } catch (e) {
    throw e instanceof FileFormatError ? e : new FileFormatError(spec.weightsFile, fsErrorReason(e));
  }
  assertFitsBackend(backendName(), cfg, spec.weightsFile);
  return { model: loadVit(spec), spec };
}

function backendName(): string | undefined {
  try {
    return activeBackend().name;
  } catch {
    return undefined; // no backend chosen yet: nothing to compare with
  }
}

/** A user-facing failure: printed as one line, no stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `--shard K/N` → { index: K, count: N } (0 ≤ K < N). */
export function parseShard(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count)
    throw new UsageError(`--shard ${value}: expected K/N with 0 ≤ K < N, e.g. 0/4`);
  return { index, count };
}

/** results/<command>/<model>/<name or timestamp>[-shard-K-of-N]. */
export function defaultOutDir(
  command: string,
  model: string,
  name: string | undefined,
  shard?: { index: number; count: number },
): string {
  const base = defaultRunDir(command, model, name);
  return shard ? `${base}-shard-${shard.index}-of-${shard.count}` : base;
}
