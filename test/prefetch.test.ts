import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { prefetcher } from '../src/util/prefetch.js';

test('prefetcher: results in order, at most `ahead` loads started beyond the one asked for, `concurrency` at once', async () => {
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const loads = prefetcher(
    10,
    async (k) => {
      started.push(k);
      running++;
      peak = Math.max(peak, running);
      // Later items finish first: the order of results must not follow completion.
      for (let i = 0; i < 10 - k; i++) await tick();
      running--;
      return k * k;
    },
    { ahead: 3, concurrency: 2 },
  );
  const out: number[] = [];
  for (let k = 0; k < 10; k++) {
    out.push(await loads.get(k));
    assert.ok(Math.max(...started) <= k + 3, `item ${k}: started up to ${Math.max(...started)}`);
  }
  assert.deepEqual(
    out,
    Array.from({ length: 10 }, (_, k) => k * k),
  );
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(peak, 2);
});

test('prefetcher: a failed load is reported by its own get, not earlier and not as an unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const loads = prefetcher(
      3,
      async (k) => {
        if (k === 2) throw new Error('cannot read image 2');
        return k;
      },
      { ahead: 2 },
    );
    assert.equal(await loads.get(0), 0);
    await tick();
    await tick();
    assert.equal(await loads.get(1), 1);
    await assert.rejects(loads.get(2), /cannot read image 2/);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('prefetcher: ahead 0 loads each item only when it is asked for; items must be asked for in order', async () => {
  const started: number[] = [];
  const loads = prefetcher(
    3,
    async (k) => {
      started.push(k);
      return k;
    },
    { ahead: 0 },
  );
  assert.equal(await loads.get(0), 0);
  await tick();
  assert.deepEqual(started, [0]);
  assert.throws(() => loads.get(2), /item 2 asked for, expected 1/);
});
