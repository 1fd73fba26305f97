/**
 * Worker module for test/worker-pool-native.test.ts: an onnxruntime session of the golden S1 ViT, made during
 * setup; an item classifies `batch` seeded random images `repeat` times in a row, as the perturbation test's
 * steps do (a close then lands while a session runs).
 */

import { serveWorker } from '../../src/engine/worker-pool.js';
import { onnxClassifierFor } from '../../src/models/onnx-vit.js';
import { loadGoldenVit } from './golden.js';

serveWorker<{ batch: number; repeat: number }, { seed: number }, number>(async ({ batch, repeat }) => {
  const model = await loadGoldenVit('S1', 'wasm');
  const c = model.config;
  const classify = await onnxClassifierFor(model);
  const plane = c.in_chans * c.img_size * c.img_size;
  return async ({ seed }) => {
    const data = new Float32Array(batch * plane).map((_, i) => Math.sin((i + seed) * 0.37));
    let sum = 0;
    for (let r = 0; r < repeat; r++) sum += (await classify(data, batch))[0]!;
    return sum;
  };
});
