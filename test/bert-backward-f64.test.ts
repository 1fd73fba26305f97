import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { f64Products, jsMatMulF64 } from '../src/engine/f64-matmul.js';
import { loadOnnxRuntime } from '../src/engine/onnx.js';
import { geluF64, geluGradF64, layerNorm, layerNormBackwardF64 } from '../src/models/host-f64.js';
import { maxAbsDiff } from './helpers/compare.js';

/**
 * The float64 backward pass's pieces: products with a transposed float32 weight (src/engine/f64-matmul.ts), GELU'
 * and the LayerNorm backward (src/models/host-f64.ts).
 */

const rand = (n: number, seed: number) => {
  let x = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32 - 0.5;
  });
};

describe('float64 products with a transposed float32 weight', () => {
  const [g, m, k, n] = [2, 3, 7, 5];
  const a = rand(g * m * k, 11);
  const wNK = Float32Array.from(rand(n * k, 12)); // stored [n, k], used as its transpose [k, n]
  test('JavaScript: each output the float64 dot product with the transpose', async () => {
    const c = await jsMatMulF64(a, wNK, g, m, k, n, { transposed: true });
    for (let gi = 0; gi < g; gi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let kk = 0; kk < k; kk++) s += a[(gi * m + i) * k + kk]! * wNK[j * k + kk]!;
          assert.equal(c[(gi * m + i) * n + j], s);
        }
    await assert.rejects(jsMatMulF64(a, Float64Array.from(wNK), g, m, k, n, { transposed: true }), /float32 weight/);
  });
  test('onnxruntime = JavaScript within float64 rounding', {
    skip: loadOnnxRuntime().ort ? false : loadOnnxRuntime().error,
  }, async () => {
    const { matmul } = await f64Products();
    const ort = await matmul(a, wNK, g, m, k, n, { transposed: true });
    const js = await jsMatMulF64(a, wNK, g, m, k, n, { transposed: true });
    assert.ok(maxAbsDiff(ort, js) <= 1e-14, `max|Δ| ${maxAbsDiff(ort, js)}`);
  });
});

test("GELU' and the LayerNorm backward: central differences agree to 1e-9", () => {
  const z = rand(41, 3).map((v) => v * 8);
  const h = 1e-5;
  const gg = geluGradF64(z);
  const up = geluF64(z.map((v) => v + h));
  const down = geluF64(z.map((v) => v - h));
  for (let i = 0; i < z.length; i++) assert.ok(Math.abs((up[i]! - down[i]!) / (2 * h) - gg[i]!) < 1e-9, `z ${z[i]}`);
  const D = 9;
  const x = rand(2 * D, 4);
  const gOut = rand(2 * D, 5);
  const norm: [Float64Array, Float64Array] = [rand(D, 6).map((v) => 1 + v), rand(D, 7)];
  const gx = layerNormBackwardF64(x, gOut, D, norm[0], 1e-5);
  const f = (xx: Float64Array) => layerNorm(xx, D, norm, 1e-5).reduce((s, v, i) => s + v * gOut[i]!, 0);
  for (let i = 0; i < x.length; i++) {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i]! += h;
    xm[i]! -= h;
    assert.ok(Math.abs((f(xp) - f(xm)) / (2 * h) - gx[i]!) < 1e-9, `x[${i}]`);
  }
});
