import assert from 'node:assert/strict';

/**
 * Numeric comparisons shared by the tests. Every one of them fails on a NaN anywhere in either argument:
 * the reductions return NaN, and NaN is neither `<=` nor `>=` any bound (test/compare.test.ts holds them
 * to that, with a NaN at the first, a middle and the last position).
 */

/** max |a_i|; NaN if any element is NaN. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]!);
    if (Number.isNaN(v)) return Number.NaN;
    if (v > m) m = v;
  }
  return m;
}

/** max |a_i − b_i|; NaN if any difference is NaN (a NaN on either side, or ∞ − ∞). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Number.NaN;
    if (d > m) m = d;
  }
  return m;
}

/** Pearson correlation; NaN if either side holds a NaN or is constant. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! - ma;
    const y = b[i]! - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** max|mine − ref| ≤ rel · max(floor, max|ref|), with both numbers in the message. */
export function assertClose(mine: ArrayLike<number>, ref: ArrayLike<number>, rel: number, what: string, floor = 0) {
  const d = maxAbsDiff(mine, ref);
  const scale = Math.max(floor, maxAbs(ref));
  assert.ok(d <= rel * scale, `${what}: max|Δ| ${d} > ${rel} × ${scale}`);
}

/** |actual − expected| ≤ tol · |expected|. */
export function assertRel(actual: number, expected: number, tol: number, what: string): void {
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), Number.MIN_VALUE);
  assert.ok(err <= tol, `${what}: ${actual} vs ${expected} (relative error ${err} > ${tol})`);
}

/**
 * Two JSON-like values hold the same keys, lengths and non-numbers, and every number is within `tol` of its
 * counterpart. `path` names the place of a mismatch.
 */
export function assertNestedClose(actual: unknown, expected: unknown, tol: number, path = '$'): void {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path}: expected a number`);
    assert.ok(Math.abs((actual as number) - expected) <= tol, `${path}: ${actual} vs ${expected}`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected a list`);
    assert.equal((actual as unknown[]).length, expected.length, `${path}: length`);
    expected.forEach((e, i) => {
      assertNestedClose((actual as unknown[])[i], e, tol, `${path}[${i}]`);
    });
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${path}: expected an object`);
    const a = actual as Record<string, unknown>;
    assert.deepEqual(Object.keys(a).sort(), Object.keys(expected).sort(), `${path}: keys`);
    for (const [k, v] of Object.entries(expected)) assertNestedClose(a[k], v, tol, `${path}.${k}`);
    return;
  }
  assert.deepEqual(actual, expected, path);
}
