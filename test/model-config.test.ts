import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { minMaxPerSample } from '../src/methods/aggregate.js';
import { assertFitsBackend, estimateVitMemory, ModelTooLargeError } from '../src/models/memory.js';
import { geometry, parseVitConfig, readVitConfig, VIT_PRESET_NAMES, vitPreset } from '../src/models/vit-config.js';
import { expectedVitKeys, vitWeightsFromStateDict } from '../src/models/vit-weights.js';
import { goldenPath } from './helpers/golden.js';

const timm = {
  img_size: 224,
  patch_size: 16,
  in_chans: 3,
  embed_dim: 48,
  depth: 3,
  num_heads: 3,
  mlp_ratio: 4,
  qkv_bias: true,
  num_classes: 10,
};

test('config: timm names at the top level; geometry derived, not hard-coded', () => {
  const c = parseVitConfig({ ...timm, img_size: 384, patch_size: 32 }, 'cfg.json');
  const g = geometry(c);
  assert.deepEqual(g.grid, [12, 12]);
  assert.equal(g.numTokens, 145);
  assert.equal(g.headDim, 16);
  assert.equal(g.scale, 0.25);
  assert.deepEqual(c.mean, [0.5, 0.5, 0.5]);
  assert.equal(c.norm_eps, 1e-6);
  assert.equal(c.final_norm_eps, 1e-6);
  assert.equal(c.lrp_final_norm_eps, 1e-5);
  assert.deepEqual(parseVitConfig({ ...timm, mean: [0.1, 0.2, 0.3], std: 0.25 }, 'x').std, [0.25, 0.25, 0.25]);
});

test('config: the golden config layout (model / normalisation / layernorm_eps) is accepted', () => {
  const c = readVitConfig(goldenPath('vit', 'S1', 'config.json'));
  assert.equal(c.embed_dim, 48);
  assert.equal(c.lrp_final_norm_eps, 1e-5);
  assert.equal(c.final_norm_eps, 1e-6);
});

test('config: presets have the reference geometry and normalisation', () => {
  assert.deepEqual(VIT_PRESET_NAMES, ['deit_base_patch16_224', 'vit_base_patch16_224', 'vit_large_patch16_224']);
  const base = vitPreset('vit_base_patch16_224');
  assert.equal(base.embed_dim, 768);
  assert.deepEqual(base.mean, [0.5, 0.5, 0.5]);
  assert.equal(base.lrp_final_norm_eps, 1e-5);
  assert.equal(vitPreset('vit_large_patch16_224').depth, 24);
  assert.equal(vitPreset('vit_large_patch16_224').num_heads, 16);
  assert.deepEqual(vitPreset('deit_base_patch16_224').mean, [0.485, 0.456, 0.406]);
  assert.equal(expectedVitKeys(base).size, 4 + 12 * 12 + 4);
  assert.deepEqual(parseVitConfig({ preset: 'deit_base_patch16_224', num_classes: 5 }, 'p.json').num_classes, 5);
});

test('config: impossible geometry and missing fields fail with one clear message naming the file', () => {
  assert.throws(
    () => parseVitConfig({ ...timm, img_size: 225 }, 'a.json'),
    /^FileFormatError: a\.json: invalid model config: img_size 225 is not divisible by patch_size 16/,
  );
  assert.throws(
    () => parseVitConfig({ ...timm, num_heads: 5 }, 'b.json'),
    /b\.json: .*num_heads 5 does not divide embed_dim 48/,
  );
  assert.throws(() => parseVitConfig({ ...timm, depth: undefined }, 'c.json'), /c\.json: missing field 'depth'/);
  assert.throws(() => parseVitConfig({ ...timm, depth: '3' }, 'd.json'), /d\.json: field 'depth' must be a number/);
  assert.throws(() => parseVitConfig([1, 2], 'e.json'), /e\.json: expected a JSON object/);
  assert.throws(() => readVitConfig('/nonexistent/cfg.json'), /cfg\.json: cannot read model config \(ENOENT\)/);
});

test('weights: missing, unexpected and mis-shaped keys name the key, the file and the shapes', async () => {
  await initBackend('auto');
  const file = goldenPath('vit', 'S1', 'weights.safetensors');
  const sd = readSafetensors(file).tensors;
  const cfg = parseVitConfig(timm, 'cfg');
  const missing = new Map(sd);
  missing.delete('blocks.1.attn.qkv.weight');
  assert.throws(
    () => vitWeightsFromStateDict(missing, cfg, file),
    /weights\.safetensors: .*missing key 'blocks\.1\.attn\.qkv\.weight' \(expected shape \(144, 48\)\)/,
  );
  const extra = new Map(sd);
  extra.set('pre_logits.fc.weight', { shape: [48, 48], data: new Float32Array(48 * 48) });
  assert.throws(
    () => vitWeightsFromStateDict(extra, cfg, file),
    /unexpected key 'pre_logits\.fc\.weight' \(shape \(48, 48\)\)/,
  );
  const wider = parseVitConfig({ ...timm, num_classes: 1000 }, 'cfg');
  assert.throws(
    () => vitWeightsFromStateDict(sd, wider, file),
    /key 'head\.weight' has shape \(10, 48\), the config expects \(1000, 48\)/,
  );
  const noBias = parseVitConfig({ ...timm, qkv_bias: false }, 'cfg');
  assert.throws(() => vitWeightsFromStateDict(sd, noBias, file), /unexpected key 'blocks\.0\.attn\.qkv\.bias'/);
});

test('min–max: a constant map becomes zeros and is flagged, never NaN', async () => {
  await initBackend('auto');
  const { normalized, constant } = minMaxPerSample(
    tf.tensor2d([
      [2, 2, 2],
      [1, 3, 2],
    ]),
  );
  assert.deepEqual(constant, [true, false]);
  assert.deepEqual(Array.from(normalized.dataSync()), [0, 0, 0, 0, 1, 0.5]);
});

test('memory: ViT-B fits the 4 GiB wasm heap; ViT-L/16 and ViT-H/14 are refused by name, only on wasm', () => {
  const gib = (name: string) => estimateVitMemory(vitPreset(name)).totalBytes / 2 ** 30;
  // Measured on wasm: ViT-B/16's heap is 1.69 GiB after a six-method sweep; ViT-L/16 aborts in XNNPACK
  // (out of memory) during its first forward pass.
  const base = gib('vit_base_patch16_224');
  assert.ok(base > 1.6 && base < 1.9, `ViT-B ${base} GiB`);
  assert.ok(gib('vit_large_patch16_224') > 4, `ViT-L ${gib('vit_large_patch16_224')} GiB`);
  const huge = parseVitConfig(
    {
      ...timm,
      name: 'vit_huge_patch14_224',
      patch_size: 14,
      embed_dim: 1280,
      depth: 32,
      num_heads: 16,
      num_classes: 1000,
    },
    'huge.json',
  );
  const e = estimateVitMemory(huge);
  // 632M parameters: 2.5 GB of weights per orientation, two orientations, each with XNNPACK's packed copy.
  assert.ok(e.weightBytes > 9 * 2 ** 30 && e.weightBytes < 10 * 2 ** 30, String(e.weightBytes));
  assert.throws(
    () => assertFitsBackend('wasm', huge, 'w.safetensors'),
    (err: unknown) =>
      err instanceof ModelTooLargeError &&
      /^w\.safetensors: vit_huge_patch14_224 needs about \d+\.\d GiB .*4 GiB heap; install @tensorflow\/tfjs-node \(--backend tensorflow\)$/.test(
        err.message,
      ),
  );
  assertFitsBackend('tensorflow', huge, 'w.safetensors');
  assertFitsBackend('wasm', vitPreset('vit_base_patch16_224'), 'w.safetensors');
  assert.throws(
    () => assertFitsBackend('wasm', vitPreset('vit_large_patch16_224'), 'l.safetensors'),
    /l\.safetensors: vit_large_patch16_224 needs about 5\.6 GiB/,
  );
});
