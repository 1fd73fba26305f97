import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { f64Products, jsMatMulF64 } from '../src/engine/f64-matmul.js';
import * as tf from '../src/engine/tf.js';
import type { HostLinear } from '../src/models/host-f64.js';
import { Linear } from '../src/models/linear.js';
import { cloneRule, poolRule, productRule, productTransposedRule, zBoxRule } from '../src/rules/common.js';
import {
  cloneRuleF64,
  hostRuleSets,
  poolRuleF64,
  productRuleF64,
  productTransposedRuleF64,
  safeDiv,
  zBoxRuleF64,
} from '../src/rules/float64.js';
import { RULE_SETS } from '../src/rules/index.js';
import { assertClose } from './helpers/compare.js';

/**
 * The float64 relevance rules (src/rules/float64.ts, used by `--forward f64`) are the same rules as the backend's
 * (src/rules/*.ts): on well-conditioned random operands (positive where a rule's denominator is a sum of mixed-sign
 * terms) both give the same relevance up to float32 rounding. Measured: max|Δ| ≤ 9.0e-8 × max|ref| over these cases
 * (the ours linear rule; the others 5.7e-8 to 9.0e-8: the float32 side's own rounding, about one ulp); bound 1e-6,
 * ten times that.
 */
const REL = 1e-6;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function values(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const f64 = (x: Float32Array) => Float64Array.from(x);
const read = (t: tf.Tensor) => t.dataSync() as Float32Array;

for (const [engine, matmul] of [
  ['onnxruntime or JavaScript (f64Products)', async () => (await f64Products()).matmul],
  ['JavaScript', async () => jsMatMulF64],
] as const) {
  describe(`float64 rules = the backend's rules (${engine})`, () => {
    const r = rng(7);
    const M = 5;
    const IN = 64;
    const OUT = 24;
    const W = values(OUT * IN, r);
    const layer = new Linear(tf.tensor2d(W, [OUT, IN]));
    const host: HostLinear = { Wt: read(layer.Wt).slice(), inDim: IN, outDim: OUT };
    const x = values(M * IN, r);
    const R = values(M * OUT, r);

    for (const name of ['ours', 'lrp'] as const) {
      test(`${name}: linear`, async () => {
        const rules = hostRuleSets(await matmul());
        const xW = tf.tidy(() => read(layer.product(tf.tensor2d(x, [M, IN]))).slice());
        const ref = tf.tidy(() =>
          read(
            RULE_SETS[name].linear(layer, tf.tensor2d(x, [M, IN]), tf.tensor2d(R, [M, OUT]), tf.tensor2d(xW, [M, OUT])),
          ).slice(),
        );
        // The forward product in float64, as the float64 pass keeps it.
        const xW64 = await (await matmul())(f64(x), host.Wt, 1, M, IN, OUT);
        assertClose(await rules[name].linear(host, f64(x), f64(R), xW64), ref, REL, `${name} linear`);
      });

      test(`${name}: add`, async () => {
        const rules = hostRuleSets(await matmul());
        const a = values(M * OUT, r, 0.1, 1);
        const b = values(M * OUT, r, 0.1, 1);
        const z = Float32Array.from(a, (v, i) => v + b[i]!);
        const ref = tf.tidy(() =>
          RULE_SETS[name]
            .add(
              tf.tensor2d(a, [1, M * OUT]),
              tf.tensor2d(b, [1, M * OUT]),
              tf.tensor2d(R, [1, M * OUT]),
              tf.tensor2d(z, [1, M * OUT]),
            )
            .map((t) => read(t).slice()),
        );
        const ours = rules[name].add(
          f64(a),
          f64(b),
          f64(R),
          f64(a).map((v, i) => v + b[i]!),
        );
        assertClose(ours[0], ref[0]!, REL, `${name} add, first share`);
        assertClose(ours[1], ref[1]!, REL, `${name} add, second share`);
      });
    }

    test('clone and pool', () => {
      const R2 = values(M * IN, r);
      const ref = tf.tidy(() => read(cloneRule(tf.tensor(x), [tf.tensor(x), tf.tensor(R2)])).slice());
      assertClose(cloneRuleF64(f64(x), [f64(x), f64(R2)]), ref, REL, 'clone');
      const refPool = tf.tidy(() => read(poolRule(tf.tensor2d(x, [M, IN]), tf.tensor2d(R2, [M, IN]))).slice());
      assertClose(poolRuleF64(f64(x), f64(R2)), refPool, REL, 'pool');
    });

    test('the two-operand products', async () => {
      const mm = await matmul();
      const [g, n, k, m] = [3, 6, 4, 5];
      const A = values(g * n * k, r, 0.1, 1);
      const B = values(g * k * m, r, 0.1, 1);
      const Rp = values(g * n * m, r);
      const Z = await mm(f64(A), f64(B), g, n, k, m);
      const ref = tf.tidy(() =>
        productRule(tf.tensor3d(A, [g, n, k]), tf.tensor3d(B, [g, k, m]), tf.tensor3d(Rp, [g, n, m])).map((t) =>
          read(t).slice(),
        ),
      );
      const ours = await productRuleF64(mm, f64(A), f64(B), f64(Rp), Z, [g, n, k, m]);
      assertClose(ours[0], ref[0]!, REL, 'A·B, A');
      assertClose(ours[1], ref[1]!, REL, 'A·B, B');

      const Bq = values(g * n * k, r, 0.1, 1);
      const Rs = values(g * n * n, r);
      const Bt = tf.tidy(() => read(tf.transpose(tf.tensor3d(Bq, [g, n, k]), [0, 2, 1])).slice());
      const Zs = await mm(f64(A), f64(Bt), g, n, k, n);
      const refT = tf.tidy(() =>
        productTransposedRule(
          tf.tensor3d(A, [g, n, k]),
          tf.tensor3d(Bq, [g, n, k]),
          tf.tensor3d(Bt, [g, k, n]),
          tf.tensor3d(Rs, [g, n, n]),
        ).map((t) => read(t).slice()),
      );
      const oursT = await productTransposedRuleF64(mm, f64(A), f64(Bq), f64(Rs), Zs, [g, n, k]);
      assertClose(oursT[0], refT[0]!, REL, 'A·Bᵀ, A');
      assertClose(oursT[1], refT[1]!, REL, 'A·Bᵀ, B');
    });

    test('zᴮ at the input conv', async () => {
      const mm = await matmul();
      // Pixels in [lo, hi] and a positive relevance: the box denominator is a sum of non-negative terms.
      const patches = values(M * IN, r, -2, 2.5);
      let lo = Number.POSITIVE_INFINITY;
      let hi = Number.NEGATIVE_INFINITY;
      for (const v of patches) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const Rz = values(M * OUT, r, 0, 1);
      const product = await mm(f64(patches), host.Wt, 1, M, IN, OUT);
      const ref = tf.tidy(() =>
        read(
          zBoxRule(
            layer,
            tf.tensor2d(patches, [M, IN]),
            tf.tensor2d(Rz, [M, OUT]),
            tf.fill([M, 1], lo) as tf.Tensor2D,
            tf.fill([M, 1], hi) as tf.Tensor2D,
          ),
        ).slice(),
      );
      assertClose(await zBoxRuleF64(mm, host, f64(patches), f64(Rz), lo, hi, product), ref, REL, 'zᴮ');
    });
  });
}

test('safe_divide in float64: 0 where b = 0, a/(b + ε) elsewhere, a/ε where b + ε = 0', () => {
  assert.equal(safeDiv(3, 0), 0);
  assert.equal(safeDiv(3, 2), 3 / (2 + 1e-9));
  assert.equal(safeDiv(3, -1e-9), 3 / 1e-9);
  // A tiny negative b flips sign after the shift, as in the reference.
  assert.ok(safeDiv(1, -5e-10) > 0);
});
