import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { findAdapter } from '../src/engine/webgpu.js';
import { assertFitsGpu, largestBertTensor, largestVitTensor, ModelTooLargeError } from '../src/models/memory.js';
import { vitPreset } from '../src/models/vit-config.js';
import { goldenPath } from './helpers/golden.js';
import { withoutTimings } from './helpers/run-outputs.js';
import { webgpuSkip } from './helpers/webgpu.js';

const BIN = resolve(import.meta.dirname, '../bin/bench.js');

describe('GPU buffer limits (no adapter needed)', () => {
  test('the largest tensor of a ViT and a BERT, and the refusal naming file, size and limits', () => {
    // ViT-B/16: an MLP weight, 3072 × 768 float32 = 9 MiB; ViT-L/16: 4096 × 1024 = 16 MiB.
    assert.deepEqual(largestVitTensor(vitPreset('vit_base_patch16_224')), {
      bytes: 4 * 3072 * 768,
      what: 'an MLP weight (3072×768)',
    });
    assert.equal(largestVitTensor(vitPreset('vit_large_patch16_224')).bytes, 4 * 4096 * 1024);
    // BERT-base: the word embeddings, 30522 × 768 float32.
    const bert = {
      name: 'bert-base',
      vocab_size: 30522,
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      hidden_act: 'gelu' as const,
      max_position_embeddings: 512,
      type_vocab_size: 2,
      layer_norm_eps: 1e-12,
      num_labels: 2,
      pad_token_id: 0,
    };
    assert.deepEqual(largestBertTensor(bert), { bytes: 4 * 30522 * 768, what: 'the word embeddings (30522×768)' });
    const limits = { maxStorageBufferBindingSize: 8 * 2 ** 20, maxBufferSize: 2 ** 30 };
    assert.throws(
      () => assertFitsGpu(limits, largestVitTensor(vitPreset('vit_base_patch16_224')), 'vit_base', 'w.safetensors'),
      (e: Error) =>
        e instanceof ModelTooLargeError &&
        e.message ===
          'w.safetensors: vit_base needs one GPU buffer of 9.0 MiB for an MLP weight (3072×768), more than this adapter ' +
            'allows (maxStorageBufferBindingSize 8.0 MiB, maxBufferSize 1024.0 MiB); use --backend wasm or tensorflow, ' +
            'or a GPU with larger limits',
    );
    assert.doesNotThrow(() =>
      assertFitsGpu({ ...limits, maxStorageBufferBindingSize: 2 ** 27 }, largestBertTensor(bert), 'b', 'f'),
    );
  });
});

/**
 * With an adapter (a GPU's Vulkan driver, or lavapipe from scripts/setup-lavapipe.sh), the backend starts and
 * says which adapter it runs on. Without one these tests are skipped with a line saying how to enable them; under
 * CI=true a missing adapter fails the run (.ci/run installs lavapipe).
 */
describe('the webgpu backend on this machine’s adapter', async () => {
  const skip = await webgpuSkip();
  const S1 = [
    '--model-config',
    goldenPath('vit', 'S1', 'config.json'),
    '--weights',
    goldenPath('vit', 'S1', 'weights.safetensors'),
  ];
  const bench = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [BIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 300_000,
    });

  test('a model too large for the adapter is refused before loading, in one line', { skip }, () => {
    const r = bench(['explain', '--backend', 'webgpu', ...S1, '--json', join(tmpdir(), 'bench-webgpu-explain.json')], {
      BENCH_WEBGPU_FAKE_LIMIT: '100000',
    });
    assert.equal(r.status, 1, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('bench: error:'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(
      errors[0]!,
      /weights\.safetensors: .* needs one GPU buffer of 0\.\d MiB for .*, more than this adapter allows \(maxStorageBufferBindingSize 0\.1 MiB/,
    );
  });

  // Each worker thread starts its own Dawn device on the one adapter. Measured on lavapipe (2 busy cores): identical
  // per-image rows and summary; 4.5 s/image with 1 worker, 7.2 with 2 (llvmpipe already spreads one device over
  // every core), so this checks the numbers only.
  test('bench seg --workers 2 on webgpu writes the numbers of --workers 1', { skip, timeout: 600_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-webgpu-workers-'));
    const args = ['seg', '--backend', 'webgpu', '--limit', '4', '--quiet'];
    for (const w of ['1', '2']) {
      const r = bench([...args, '--workers', w, '--out', join(dir, `w${w}`)]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.ok(readFileSync(join(dir, 'w2', 'per_image.csv')).equals(readFileSync(join(dir, 'w1', 'per_image.csv'))));
    assert.deepEqual(withoutTimings(join(dir, 'w2', 'summary.json')), withoutTimings(join(dir, 'w1', 'summary.json')));
  });

  test('auto never picks a software adapter', { skip }, async () => {
    const a = await findAdapter();
    const r = bench(['explain', '--backend', 'auto', ...S1, '--json', join(tmpdir(), 'bench-webgpu-explain.json')]);
    assert.equal(r.status, 0, r.stderr);
    if (a.software) assert.doesNotMatch(r.stderr, /^backend: webgpu/m);
  });
});
