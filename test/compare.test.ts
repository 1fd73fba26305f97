import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, assertNestedClose, assertRel, maxAbs, maxAbsDiff, pearson } from './helpers/compare.js';

/**
 * The comparison helpers can fail: a NaN anywhere, on either side, fails every one of them. (An earlier
 * maxAbsDiff kept a NaN only when it was the last element, so maps full of NaNs passed the golden tests.)
 */
const N = 7;
const base = () => Float64Array.from({ length: N }, (_, i) => 0.1 * i + 0.05);
const positions: [string, number][] = [
  ['first', 0],
  ['middle', 3],
  ['last', N - 1],
];
const withNaN = (at: number) => {
  const a = base();
  a[at] = Number.NaN;
  return a;
};

describe('every comparison helper fails on a NaN', () => {
  for (const [where, at] of positions) {
    test(`NaN at the ${where} position`, () => {
      const good = base();
      const bad = withNaN(at);
      // The reductions: NaN, which no bound accepts.
      assert.ok(Number.isNaN(maxAbs(bad)), 'maxAbs');
      assert.ok(Number.isNaN(maxAbsDiff(bad, good)), 'maxAbsDiff, NaN in the first argument');
      assert.ok(Number.isNaN(maxAbsDiff(good, bad)), 'maxAbsDiff, NaN in the second argument');
      assert.ok(!(maxAbsDiff(bad, good) <= 1e9), 'a generous bound still rejects it');
      assert.ok(Number.isNaN(pearson(bad, good)), 'pearson, first argument');
      assert.ok(!(pearson(good, bad) >= -1), 'pearson, second argument: no threshold accepts it');
      // The assertions.
      assert.throws(() => assertClose(bad, good, 1e9, 'x'), /max\|Δ\| NaN/);
      assert.throws(() => assertClose(good, bad, 1e9, 'x'), /NaN/);
      assert.throws(() => assertNestedClose({ v: [...bad] }, { v: [...good] }, 1e9), /\$\.v\[\d\]: NaN vs/);
      assert.throws(() => assertNestedClose({ v: [...good] }, { v: [...bad] }, 1e9), /vs NaN/);
      assert.throws(() => assertRel(bad[at]!, good[at]!, 1e9, 'x'), /relative error NaN/);
      assert.throws(() => assertRel(good[at]!, bad[at]!, 1e9, 'x'), /relative error NaN/);
    });
  }

  test('∞ − ∞ is a NaN difference too', () => {
    const a = base();
    const b = base();
    a[2] = Number.POSITIVE_INFINITY;
    b[2] = Number.POSITIVE_INFINITY;
    assert.ok(Number.isNaN(maxAbsDiff(a, b)));
  });
});

describe('and they accept what is within bounds', () => {
  test('values, bounds and messages', () => {
    const a = base();
    const b = base().map((x, i) => x + (i === 4 ? 2e-3 : 1e-4));
    assert.equal(maxAbs(Float64Array.of(-3, 2)), 3);
    assert.ok(Math.abs(maxAbsDiff(a, b) - 2e-3) < 1e-15);
    assert.ok(pearson(a, b) > 0.999);
    assert.ok(
      Math.abs(
        pearson(
          a,
          a.map((x) => -2 * x + 1),
        ) + 1,
      ) < 1e-12,
      'anti-correlated is −1',
    );
    assertClose(b, a, 2e-3 / 0.65 + 1e-12, 'within');
    assert.throws(() => assertClose(b, a, 1e-3, 'beyond'), /beyond: max\|Δ\| 0\.002\d* > 0\.001 × 0\.65/);
    assertClose(b, a, 2e-3 + 1e-12, 'floor', 1);
    assert.throws(() => assertClose(b, a, 1e-3, 'floor', 1), /> 0\.001 × 1/);
    assertNestedClose({ k: [1, { x: 2 }], s: 'a' }, { k: [1 + 1e-13, { x: 2 }], s: 'a' }, 1e-12);
    assert.throws(() => assertNestedClose({ k: [1.1] }, { k: [1] }, 1e-12), /\$\.k\[0\]: 1\.1 vs 1/);
    assert.throws(() => assertNestedClose({ k: [1, 2] }, { k: [1] }, 1), /\$\.k: length/);
    assert.throws(() => assertNestedClose({ k: 1, j: 2 }, { k: 1 }, 1), /\$: keys/);
    assert.throws(() => assertNestedClose({ s: 'b' }, { s: 'a' }, 1), /\$\.s/);
    assert.throws(() => assertNestedClose([1], { k: 1 }, 1), /\$: expected an object/);
    assertRel(1.0001, 1, 1.0001e-4, 'rel');
    assert.throws(() => assertRel(1.001, 1, 1e-4, 'rel'), /rel: 1\.001 vs 1/);
    assert.throws(() => maxAbsDiff([1, 2], [1]), /length mismatch/);
  });
});
