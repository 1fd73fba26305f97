import type { Argv } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice } from '../engine/backend-choice.js';
import { FORWARD_CHOICES, type ForwardPrecision } from '../models/forward-precision.js';
import { VIT_PRESET_NAMES } from '../models/vit-config.js';

/**
 * What the command definitions share: options, and the error a command throws for bad input. The
 * definitions (src/commands/<name>.ts) import only this kind of module, so that `bench --help` and
 * `bench <command> --help` answer without loading TensorFlow.js, h5wasm or sharp; a command's work is in
 * src/commands/<name>-run.ts, which its handler imports when it runs (test/startup.test.ts checks).
 */

/** A user-facing failure: printed as one line, no stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Options every model-running command shares. */
export interface ModelArgs {
  model?: string;
  'model-config'?: string;
  weights?: string;
  norm: 'config' | 'half' | 'imagenet';
  backend: BackendChoice;
  forward: ForwardPrecision;
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
      default: (process.env.BENCH_BACKEND || 'auto') as BackendChoice,
      describe:
        'TensorFlow.js backend (default: $BENCH_BACKEND, else auto); auto = native GPU package, then webgpu on a hardware GPU, then native CPU, then wasm, then cpu. webgpu: Dawn on a Vulkan driver (a software one only when asked for by name)',
    })
    .option('forward', FORWARD_OPTION);
}

/** The --forward option of every model-running command (ViT and BERT). */
export const FORWARD_OPTION = {
  choices: FORWARD_CHOICES,
  default: (process.env.BENCH_FORWARD || 'f32') as ForwardPrecision,
  describe:
    "precision of the model's passes, ViT and BERT (default: $BENCH_FORWARD, else f32): f64 = the forward, backward and relevance passes in float64 on the CPU, each value rounded to float32 once (closer to float64 than the official float32 code; products on onnxruntime-node's double GEMM, else JavaScript); f32 = the backend's own float32 arithmetic, the official code's",
} as const;

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

/** The --steal-lock option of every command that writes a run folder (src/benchmarks/run-lock.ts). */
export const STEAL_LOCK_OPTION = {
  type: 'boolean',
  default: false,
  describe:
    "take the output folder's run lock even if another process holds it (only when that process, e.g. on another host, has surely ended)",
} as const;
