/** Worker module for test/worker-pool.test.ts: explains seeded random images with the golden S1 ViT. */
import * as tf from '@tensorflow/tfjs';
import { serveWorker } from '../../src/engine/worker-pool.js';
import { explain } from '../../src/methods/explain.js';
import { METHODS } from '../../src/methods/registry.js';
import { loadGoldenVit } from './golden.js';

export interface PoolTestItem {
  image: number;
  /** Throw instead of answering (to test error reporting). */
  fail?: boolean;
}

serveWorker<{ config: string }, PoolTestItem, { image: number; maps: Float32Array[] }>(async ({ config }) => {
  const model = await loadGoldenVit(config, 'wasm');
  const c = model.config;
  return async ({ image, fail }) => {
    if (fail) throw new Error(`asked to fail on image ${image}`);
    const input = tf.randomUniform(
      [1, c.in_chans, c.img_size, c.img_size],
      -1,
      1,
      'float32',
      100 + image,
    ) as tf.Tensor4D;
    const ex = await explain(model, input, METHODS);
    input.dispose();
    return { image, maps: [...ex.logits, ...ex.methods.flatMap((m) => m.raw)] };
  };
});
