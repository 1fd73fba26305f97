import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadOnnxRuntime } from '../src/engine/onnx.js';
import { onnxClassifierFor } from '../src/models/onnx-vit.js';
import { bench } from './helpers/cli.js';
import { goldenPath, loadGoldenVit } from './helpers/golden.js';

/**
 * `bench perturb --classifier-engine onnxruntime`: the ONNX graph of the ViT (src/models/onnx-vit.ts) on
 * onnxruntime-node against the tfjs model. onnxruntime-node is an optional dependency: without it these tests
 * are skipped, with the line that says how to install it.
 */
const { ort, error } = loadOnnxRuntime();
const skip = ort ? false : error;

describe('classifier engine onnxruntime (S1)', { skip }, () => {
  test('logits within 2e-5 of tfjs, same top-1, an image’s logits independent of its batch (bit for bit)', async () => {
    const model = await loadGoldenVit('S1');
    const classify = await onnxClassifierFor(model);
    const x = tf.randomUniform([6, 3, 224, 224], -1, 1, 'float32', 11) as tf.Tensor4D;
    const ref = tf.tidy(() => model.logits(x, model.config.final_norm_eps)).dataSync() as Float32Array;
    const data = x.dataSync() as Float32Array;
    const got = await classify(data, 6);
    let d = 0;
    for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i]! - got[i]!));
    assert.ok(d < 2e-5, `max|Δ| ${d}`);
    const C = model.config.num_classes;
    const argmax = (a: Float32Array, r: number) => {
      let b = 0;
      for (let c = 1; c < C; c++) if (a[r * C + c]! > a[r * C + b]!) b = c;
      return b;
    };
    for (let r = 0; r < 6; r++) assert.equal(argmax(got, r), argmax(ref, r), `image ${r}`);
    const plane = 3 * 224 * 224;
    for (let r = 0; r < 6; r++) {
      const one = await classify(data.slice(r * plane, (r + 1) * plane), 1);
      assert.deepEqual(Array.from(one), Array.from(got.subarray(r * C, (r + 1) * C)), `image ${r} alone`);
    }
    x.dispose();
  });

  test('bench perturb on an official HDF5 file: onnxruntime (1 and 2 workers) writes the same steps.csv and JSON as tfjs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-onnx-'));
    const vis = goldenPath('e2e', 'perturb_S1', 'visualizations', 'transformer_attribution', 'top', 'not_ablation');
    const model = [
      '--model-config',
      goldenPath('vit', 'S1', 'config.json'),
      '--weights',
      goldenPath('vit', 'S1', 'weights.safetensors'),
    ];
    const runs: [string, string[]][] = [
      ['tfjs', ['--classifier-engine', 'tfjs']],
      ['ort', ['--classifier-engine', 'onnxruntime']],
      ['ort-w2', ['--classifier-engine', 'onnxruntime', '--workers', '2', '--batch-size', '4']],
    ];
    for (const [name, extra] of runs) {
      const r = bench([
        'perturb',
        '--vis',
        join(vis, 'results.hdf5'),
        ...model,
        ...extra,
        '--quiet',
        '--out',
        join(dir, name),
        '--json',
        join(dir, `${name}.json`),
      ]);
      assert.equal(r.code, 0, r.stderr);
      if (name !== 'tfjs') assert.match(r.stderr, /on onnxruntime-node/);
    }
    const same = (a: string, b: string) => readFileSync(join(dir, a)).equals(readFileSync(join(dir, b)));
    for (const [name] of runs.slice(1)) {
      assert.ok(same(join(name, 'steps.csv'), join('tfjs', 'steps.csv')), `${name}/steps.csv`);
      assert.ok(same(`${name}.json`, 'tfjs.json'), `${name}.json`);
    }
  });
});
