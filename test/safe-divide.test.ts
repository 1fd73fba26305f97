import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend.js';
import { SAFE_DIVIDE_EPS, safeDivide, setTrainingMode } from '../src/engine/ops.js';

test('the fused wasm safe_divide kernel gives the composite version bit for bit', async () => {
  await initBackend('wasm');
  const n = 50_000;
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  const eps = Math.fround(SAFE_DIVIDE_EPS);
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < n; i++) {
    a[i] = (rand() - 0.5) * 10 ** (rand() * 20 - 10);
    const r = rand();
    // Zeros, -0, exactly -ε (b + ε rounds to 0), tiny values around ε, and ordinary ones.
    b[i] =
      r < 0.1
        ? 0
        : r < 0.15
          ? -eps
          : r < 0.2
            ? -0
            : r < 0.3
              ? eps * (rand() - 0.5) * 4
              : (rand() - 0.5) * 10 ** (rand() * 20 - 10);
  }
  a.set([Number.NaN, Number.POSITIVE_INFINITY, 1, Number.NEGATIVE_INFINITY, 3e38], 0);
  b.set([1, 2, Number.NaN, 0, 0], 0);
  const A = tf.tensor(a, [250, 200]);
  const B = tf.tensor(b, [250, 200]);
  const fused = safeDivide(A, B).dataSync();
  setTrainingMode(true); // the composite path (the fused kernel has no gradient)
  const composite = safeDivide(A, B).dataSync();
  setTrainingMode(false);
  let differing = 0;
  for (let i = 0; i < n; i++) if (!Object.is(fused[i], composite[i])) differing++;
  assert.equal(differing, 0);
});
