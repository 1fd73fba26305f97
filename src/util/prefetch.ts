import pLimit from 'p-limit';

/**
 * Loads items ahead of their use, in order: `get(k)` returns the k-th load, after starting the loads up to
 * k + `ahead` (at most `concurrency` running at once, through p-limit). Loads are asynchronous I/O and
 * native work (file reads, sharp's decoding on libuv's thread pool) that can proceed while the main thread
 * computes; their results are consumed strictly in order, so outputs do not depend on timing. At most
 * `ahead` + 1 results are held. `get` must be called with k = 0, 1, 2, … once each. A load that fails is
 * reported by the `get` of its item, not before.
 */
export interface Prefetcher<T> {
  get(k: number): Promise<T>;
}

export function prefetcher<T>(
  count: number,
  load: (k: number) => Promise<T>,
  opts: { ahead: number; concurrency?: number },
): Prefetcher<T> {
  const limit = pLimit(Math.max(1, opts.concurrency ?? opts.ahead));
  const started = new Map<number, Promise<T>>();
  let next = 0;
  let expected = 0;
  return {
    get(k: number): Promise<T> {
      if (k !== expected) throw new Error(`prefetcher: item ${k} asked for, expected ${expected}`);
      expected++;
      for (; next < count && next <= k + Math.max(0, opts.ahead); next++) {
        const i = next;
        const p = limit(() => load(i));
        p.catch(() => {}); // reported by get(i); not an unhandled rejection while it waits
        started.set(i, p);
      }
      const p = started.get(k);
      if (!p) throw new RangeError(`prefetcher: item ${k} out of range [0, ${count})`);
      started.delete(k);
      return p;
    },
  };
}
