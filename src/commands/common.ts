import type { Argv } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice, type BackendInfo, initBackend } from '../engine/backend.js';
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
      describe: `model preset (${VIT_PRESET_NAMES.join(', ')}); or use --model-config`,
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

/** A user-facing failure: printed as one line, no stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}
