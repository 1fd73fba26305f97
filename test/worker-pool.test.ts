import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { WorkerPool } from '../src/engine/worker-pool.js';
import { explain } from '../src/methods/explain.js';
import { METHODS } from '../src/methods/registry.js';
import { loadGoldenVit } from './helpers/golden.js';
import type { PoolTestItem } from './helpers/pool-worker.js';

const config = 'S1';
const workerModule = new URL('./helpers/pool-worker.ts', import.meta.url);
type Out = { image: number; maps: Float32Array[] };

describe('WorkerPool', () => {
  test('2 workers give the same numbers as 1 worker and as this thread, in input order', async () => {
    const items: PoolTestItem[] = [3, 1, 4, 1, 5].map((image) => ({ image }));
    const runs: Out[][] = [];
    for (const n of [1, 2]) {
      const pool = await WorkerPool.start<{ config: string }, PoolTestItem, Out>(workerModule, n, { config });
      try {
        assert.equal(pool.size, n);
        runs.push(await pool.map(items));
      } finally {
        await pool.close();
      }
    }
    const model = await loadGoldenVit(config, 'wasm');
    const c = model.config;
    const here: Float32Array[][] = [];
    for (const { image } of items) {
      const input = tf.randomUniform([1, c.in_chans, c.img_size, c.img_size], -1, 1, 'float32', 100 + image);
      const ex = await explain(model, input as tf.Tensor4D, METHODS);
      input.dispose();
      here.push([...ex.logits, ...ex.methods.flatMap((m) => m.raw)]);
    }
    for (const run of runs) {
      assert.deepEqual(
        run.map((o) => o.image),
        items.map((i) => i.image),
      );
      run.forEach((o, i) => {
        assert.equal(o.maps.length, here[i]!.length);
        for (const [j, m] of o.maps.entries()) assert.deepEqual(m, here[i]![j]);
      });
    }
  });

  test('an error in a worker rejects map() with the worker and item named', async () => {
    const pool = await WorkerPool.start<{ config: string }, PoolTestItem, Out>(workerModule, 2, { config });
    try {
      await assert.rejects(
        pool.map([{ image: 0 }, { image: 1, fail: true }]),
        /failed on item 1: asked to fail on image 1/,
      );
    } finally {
      await pool.close();
    }
  });

  test('a failing setup rejects start()', async () => {
    await assert.rejects(
      WorkerPool.start(workerModule, 1, { config: 'no-such-config' }),
      /worker 0 failed during setup/,
    );
  });
});
