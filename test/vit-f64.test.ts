import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { f64Products, jsMatMulF64 } from '../src/engine/f64-matmul.js';
import { loadOnnxRuntime } from '../src/engine/onnx.js';
import { forwardPrecision } from '../src/models/forward-precision.js';
import { erf } from '../src/models/host-f64.js';
import { vitForwardF64 } from '../src/models/vit-f64.js';
import { bench } from './helpers/cli.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';
import { goldenArray, loadGoldenVit, readGoldenTensors } from './helpers/golden.js';

/** The float64 forward pass (src/models/vit-f64.ts, `--forward f64`) and its products (src/engine/f64-matmul.ts). */

test('erf: within 1e-15 of the reference values (relative), odd, ±1 far out', () => {
  // erf at these points, to 16+ digits (Abramowitz & Stegun table 7.1 / any arbitrary-precision tool).
  const ref: [number, number][] = [
    [0.01, 0.011283415555849618],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4.5, 0.9999999998033839],
  ];
  for (const [x, y] of ref) {
    // Measured: ≤ 5e-16 relative (4.5 ulp, at x = 4.5, where the series has the most terms); the bound adds 2×.
    // Far below what matters here: every GELU output is rounded to float32 (6e-8) afterwards.
    assert.ok(Math.abs(erf(x) - y) <= 1e-15 * y, `erf(${x}) = ${erf(x)}, expected ${y}`);
    assert.equal(erf(-x), -erf(x));
  }
  assert.equal(erf(0), 0);
  assert.equal(erf(7), 1);
  assert.equal(erf(-7), -1);
});

test('BENCH_FORWARD: f32 (also when unset), f64; anything else is an error', () => {
  const saved = process.env.BENCH_FORWARD;
  try {
    delete process.env.BENCH_FORWARD;
    assert.equal(forwardPrecision(), 'f32');
    process.env.BENCH_FORWARD = 'f32';
    assert.equal(forwardPrecision(), 'f32');
    process.env.BENCH_FORWARD = 'f64';
    assert.equal(forwardPrecision(), 'f64');
    process.env.BENCH_FORWARD = 'f16';
    assert.throws(() => forwardPrecision(), /BENCH_FORWARD must be f32 or f64, not 'f16'/);
  } finally {
    if (saved === undefined) delete process.env.BENCH_FORWARD;
    else process.env.BENCH_FORWARD = saved;
  }
});

describe('float64 products', () => {
  const rand = (n: number, seed: number) => {
    let x = seed >>> 0;
    return Float64Array.from({ length: n }, () => {
      x = (x * 1664525 + 1013904223) >>> 0;
      return x / 2 ** 32 - 0.5;
    });
  };
  test('JavaScript: each output the float64 dot product (checked against an exact-order sum)', async () => {
    const [g, m, k, n] = [2, 3, 5, 4];
    const a = rand(g * m * k, 1);
    const b = rand(g * k * n, 2);
    const c = await jsMatMulF64(a, b, g, m, k, n);
    for (let gi = 0; gi < g; gi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let kk = 0; kk < k; kk++) s += a[(gi * m + i) * k + kk]! * b[(gi * k + kk) * n + j]!;
          assert.equal(c[(gi * m + i) * n + j], s);
        }
  });

  test('onnxruntime double GEMM = JavaScript within float64 rounding (shared float32 weights and batched float64)', {
    skip: loadOnnxRuntime().ort ? false : loadOnnxRuntime().error,
  }, async () => {
    const { matmul, engine } = await f64Products();
    assert.match(engine, /onnxruntime/);
    const [g, m, k, n] = [3, 17, 64, 29];
    const a = rand(g * m * k, 3);
    const w = Float32Array.from(rand(k * n, 4));
    const b = rand(g * k * n, 5);
    for (const [bb, gg] of [
      [w, g],
      [b, g],
    ] as const) {
      const ort = await matmul(a, bb, gg, m, k, n);
      const js = await jsMatMulF64(a, bb, gg, m, k, n);
      // Different summation orders of 64 terms of size ≤ 0.25: |Δ| ≤ 64 · 2⁻⁵³ · 16 ≈ 1.1e-13; measured ≈ 1e-16.
      assert.ok(maxAbsDiff(ort, js) <= 1e-13, `max|Δ| ${maxAbsDiff(ort, js)}`);
    }
  });
});

describe('float64 forward pass (S1 goldens)', async () => {
  const model = await loadGoldenVit('S1');
  for (const caseName of ['random', 'smooth']) {
    test(`${caseName}: attention of every block equals the official float64 run's (stored as float32) to 1 ulp`, async () => {
      const g = readGoldenTensors('vit', 'S1', `case-${caseName}.safetensors`);
      const input = goldenArray(g, 'input') as Float32Array;
      for (const products of [jsMatMulF64, (await f64Products()).matmul]) {
        const trace = await vitForwardF64(model, input, 1, products);
        for (let l = 0; l < model.depth; l++) {
          const ref = goldenArray(g, `debug.attn.block${l}`);
          // Both are float64 values rounded to float32 once: they may differ by one float32 rounding step,
          // 2⁻²⁴ relative (6e-8) of the largest entry. Measured: ≤ 6e-8 × max. (The float32 forward: ≈ 1e-6.)
          const d = maxAbsDiff(trace.blocks[l]!.A, ref);
          assert.ok(d <= 1.2e-7 * maxAbs(ref), `block ${l}: max|Δ| ${d} (max ${maxAbs(ref)})`);
        }
      }
    });
  }
});

test('bench seg: a run does not resume under the other forward; run.json records f64 (f32 as before: absent)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-forward-'));
  const args = ['seg', '--method', 'rollout', '--limit', '2', '--quiet'];
  const f32 = join(dir, 'f32');
  assert.equal(bench([...args, '--out', f32]).code, 0);
  assert.equal(JSON.parse(readFileSync(join(f32, 'run.json'), 'utf8')).forward, undefined);
  const r = bench([...args, '--out', f32, '--resume', '--forward', 'f64']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot resume: run\.json describes a different run/);
  const f64 = join(dir, 'f64');
  assert.equal(bench([...args, '--out', f64, '--forward', 'f64']).code, 0);
  assert.equal(JSON.parse(readFileSync(join(f64, 'run.json'), 'utf8')).forward, 'f64');
});
