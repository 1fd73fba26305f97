import type { LayerNormParams } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import { FileFormatError, type StateDict, shapeString } from '../formats/host-tensor.js';
import { Linear } from './linear.js';
import { geometry, type VitConfig } from './vit-config.js';

export interface VitBlockWeights {
  norm1: { gamma: tf.Tensor1D; beta: tf.Tensor1D };
  qkv: Linear;
  proj: Linear;
  norm2: { gamma: tf.Tensor1D; beta: tf.Tensor1D };
  fc1: Linear;
  fc2: Linear;
}

export interface VitWeights {
  clsToken: tf.Tensor2D; // (1, D)
  posEmbed: tf.Tensor2D; // (N, D)
  /** The patch-embedding conv as a linear map on flattened (channel, row, col) patches. */
  patchEmbed: Linear;
  blocks: VitBlockWeights[];
  norm: { gamma: tf.Tensor1D; beta: tf.Tensor1D };
  head: Linear;
}

/**
 * The state-dict keys and shapes a config implies (timm / reference names, docs/formats.md#vit-state-dict-keys).
 */
export function expectedVitKeys(c: VitConfig): Map<string, number[]> {
  const g = geometry(c);
  const D = c.embed_dim;
  const keys = new Map<string, number[]>([
    ['cls_token', [1, 1, D]],
    ['pos_embed', [1, g.numTokens, D]],
    ['patch_embed.proj.weight', [D, c.in_chans, c.patch_size, c.patch_size]],
    ['patch_embed.proj.bias', [D]],
  ]);
  for (let i = 0; i < c.depth; i++) {
    const p = `blocks.${i}.`;
    keys.set(`${p}norm1.weight`, [D]);
    keys.set(`${p}norm1.bias`, [D]);
    keys.set(`${p}attn.qkv.weight`, [3 * D, D]);
    if (c.qkv_bias) keys.set(`${p}attn.qkv.bias`, [3 * D]);
    keys.set(`${p}attn.proj.weight`, [D, D]);
    keys.set(`${p}attn.proj.bias`, [D]);
    keys.set(`${p}norm2.weight`, [D]);
    keys.set(`${p}norm2.bias`, [D]);
    keys.set(`${p}mlp.fc1.weight`, [g.mlpHidden, D]);
    keys.set(`${p}mlp.fc1.bias`, [g.mlpHidden]);
    keys.set(`${p}mlp.fc2.weight`, [D, g.mlpHidden]);
    keys.set(`${p}mlp.fc2.bias`, [D]);
  }
  keys.set('norm.weight', [D]);
  keys.set('norm.bias', [D]);
  keys.set('head.weight', [c.num_classes, D]);
  keys.set('head.bias', [c.num_classes]);
  return keys;
}

/**
 * Check a state dict against the config (strict, like torch's load_state_dict(strict=True)) and upload it.
 * Every mismatch is reported in one message that names the key, the file and both shapes.
 */
export function vitWeightsFromStateDict(sd: StateDict, c: VitConfig, file: string): VitWeights {
  const expected = expectedVitKeys(c);
  const problems: string[] = [];
  for (const [k, shape] of expected) {
    const t = sd.get(k);
    if (!t) problems.push(`missing key '${k}' (expected shape ${shapeString(shape)})`);
    else if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      problems.push(`key '${k}' has shape ${shapeString(t.shape)}, the config expects ${shapeString(shape)}`);
    } else if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) {
      problems.push(`key '${k}' is not a floating-point tensor`);
    }
  }
  for (const k of sd.keys())
    if (!expected.has(k)) problems.push(`unexpected key '${k}' (shape ${shapeString(sd.get(k)?.shape ?? [])})`);
  if (problems.length) {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? `; … and ${problems.length - 8} more` : '';
    throw new FileFormatError(
      file,
      `weights do not fit model '${c.name}' (D=${c.embed_dim}, depth=${c.depth}, heads=${c.num_heads}, classes=${c.num_classes}, img ${c.img_size}/${c.patch_size}): ${shown}${more}`,
    );
  }
  return buildVitWeights(c, (k, shape) => {
    const t = sd.get(k)!;
    return tf.tensor(Float32Array.from(t.data as Float32Array), shape, 'float32');
  });
}

/**
 * Assemble the model's weight structure from a tensor source: `get(key, shape)` returns the state-dict
 * tensor `key` viewed with `shape`. Loading uploads host arrays; training passes views of tf.Variables,
 * so gradients reach them.
 */
export function buildVitWeights(c: VitConfig, get: (key: string, shape: number[]) => tf.Tensor): VitWeights {
  const expected = expectedVitKeys(c);
  const t = (k: string, shape?: number[]) => get(k, shape ?? expected.get(k)!);
  const vec = (k: string) => t(k) as tf.Tensor1D;
  const linear = (p: string, bias = true) =>
    new Linear(t(`${p}.weight`) as tf.Tensor2D, bias ? vec(`${p}.bias`) : undefined);
  const D = c.embed_dim;
  const g = geometry(c);
  return {
    clsToken: t('cls_token', [1, D]) as tf.Tensor2D,
    posEmbed: t('pos_embed', [g.numTokens, D]) as tf.Tensor2D,
    patchEmbed: new Linear(
      t('patch_embed.proj.weight', [D, c.in_chans * c.patch_size * c.patch_size]) as tf.Tensor2D,
      vec('patch_embed.proj.bias'),
    ),
    blocks: Array.from({ length: c.depth }, (_, i) => {
      const p = `blocks.${i}.`;
      return {
        norm1: { gamma: vec(`${p}norm1.weight`), beta: vec(`${p}norm1.bias`) },
        qkv: linear(`${p}attn.qkv`, c.qkv_bias),
        proj: linear(`${p}attn.proj`),
        norm2: { gamma: vec(`${p}norm2.weight`), beta: vec(`${p}norm2.bias`) },
        fc1: linear(`${p}mlp.fc1`),
        fc2: linear(`${p}mlp.fc2`),
      };
    }),
    norm: { gamma: vec('norm.weight'), beta: vec('norm.bias') },
    head: linear('head'),
  };
}

export function lnParams(n: { gamma: tf.Tensor1D; beta: tf.Tensor1D }, eps: number): LayerNormParams {
  return { gamma: n.gamma, beta: n.beta, eps };
}
