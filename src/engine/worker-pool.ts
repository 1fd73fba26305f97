import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { beforeStopAtOnce } from '../util/interrupt.js';
import { traceStart } from '../util/trace.js';
import { onNativeHeld, settleNative } from './native-work.js';

/**
 * Data parallelism over worker_threads: the only parallelism the wasm backend has in Node (it runs
 * single-threaded there, docs/architecture.md, "TensorFlow.js on Node"). Each worker is a separate JS realm with its own TF.js engine,
 * so each initialises its own backend and loads its own copy of the model; items are handed out one at a
 * time to whichever worker is free, and results come back in input order. An item's result depends only
 * on the item (each worker computes exactly what a single process would), so any worker count gives the
 * same numbers.
 *
 * Parent side:
 *   const pool = await WorkerPool.start<Setup, Item, Out>(siblingModule('./my-worker', import.meta.url), 2, setup);
 *   const outs = await pool.map(items);
 *   await pool.close();
 * Worker side (my-worker.ts):
 *   serveWorker<Setup, Item, Out>(async (setup) => { await initBackend(setup.backend); …; return (item) => … });
 *
 * Worker modules may be TypeScript: the worker registers tsx itself (the parent's `--import tsx` does
 * not apply to a worker's entry point). The bench command runs compiled JavaScript from dist/, the tests
 * and scripts run the sources through tsx; siblingModule() names the worker module of the caller's kind.
 * Setup values, items and results must be structured-cloneable.
 *
 * Closing: a worker that holds native asynchronous work (an onnxruntime session, native-work.ts) says so, and
 * close() asks it to end by itself once that work has settled, since terminating it mid-call would abort the
 * whole process; it is terminated only if it has not ended after CLOSE_GRACE_MS. Other workers are terminated
 * at once (a long synchronous computation cannot be interrupted any other way).
 */

/** How long close() waits for a worker holding native work to end by itself before terminating it. */
const CLOSE_GRACE_MS = 30_000;

type ToWorker<I> = { type: 'item'; index: number; item: I } | { type: 'close' };
type FromWorker<O> =
  | { type: 'ready' }
  | { type: 'native' }
  | { type: 'result'; index: number; value: O }
  | { type: 'error'; index: number | null; message: string; stack?: string };

interface PoolWorkerData<S> {
  workerPool: { module: string; tsxApi: string | null; setup: S; id: number };
}

/** Runs in the worker before its module: registers tsx for .ts modules, then imports the module. */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const { module, tsxApi } = workerData.workerPool;
(tsxApi ? import(tsxApi).then((api) => api.register()) : Promise.resolve()).then(() => import(module));
`;

/**
 * The worker module `stem` beside the module at `base` (pass import.meta.url), with the caller's
 * extension: `.ts` when the sources run through tsx, `.js` when running compiled from dist/.
 */
export function siblingModule(stem: string, base: string): URL {
  return new URL(`${stem}${/\.[cm]?ts$/.test(new URL(base).pathname) ? '.ts' : '.js'}`, base);
}

export class WorkerPool<I, O> {
  /** Removes close() from the hooks of a stop at once (interrupt.ts). */
  private readonly unhook: () => void;

  private constructor(
    private readonly workers: Worker[],
    /** The workers that hold native work (they said so with a 'native' message). */
    private readonly native: Set<Worker>,
  ) {
    this.unhook = beforeStopAtOnce(() => this.close());
  }

  /** Number of workers. */
  get size(): number {
    return this.workers.length;
  }

  /**
   * A pool for `items` items when more than one worker is asked for (at most one worker per item), else
   * undefined: the caller then computes in its own thread.
   */
  static async startFor<S, I, O>(
    module: URL,
    workers: number | undefined,
    items: number,
    setup: S,
  ): Promise<WorkerPool<I, O> | undefined> {
    if (!workers || workers <= 1 || items === 0) return undefined;
    return WorkerPool.start<S, I, O>(module, Math.min(workers, items), setup);
  }

  /** Start `count` workers running `module` and wait until every one has finished its setup. */
  static async start<S, I, O>(module: URL, count: number, setup: S): Promise<WorkerPool<I, O>> {
    if (!Number.isInteger(count) || count < 1) throw new Error(`worker count must be a positive integer, got ${count}`);
    const tsxApi = /\.[cm]?ts$/.test(module.pathname) ? import.meta.resolve('tsx/esm/api') : null;
    const workers: Worker[] = [];
    const native = new Set<Worker>();
    const ready: Promise<void>[] = [];
    for (let id = 0; id < count; id++) {
      const data: PoolWorkerData<S> = { workerPool: { module: module.href, tsxApi, setup, id } };
      const w = new Worker(BOOTSTRAP, { eval: true, workerData: data });
      workers.push(w);
      w.on('message', (m: FromWorker<O>) => {
        if (m.type === 'native') native.add(w);
      });
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: FromWorker<O>) => {
            if (m.type === 'ready') {
              cleanup();
              resolve();
            } else if (m.type === 'error') {
              cleanup();
              reject(workerError(id, m));
            }
          };
          const onError = (e: Error) => {
            cleanup();
            reject(e);
          };
          const onExit = (code: number) => {
            cleanup();
            reject(new Error(`worker ${id} exited with code ${code} during setup`));
          };
          const cleanup = () => {
            w.off('message', onMessage);
            w.off('error', onError);
            w.off('exit', onExit);
          };
          w.on('message', onMessage);
          w.on('error', onError);
          w.on('exit', onExit);
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await Promise.all(workers.map((w) => endWorker(w, native.has(w))));
      throw e;
    }
    return new WorkerPool<I, O>(workers, native);
  }

  /**
   * Process `items` on the workers: each free worker takes the next item. Resolves with the results in
   * input order; rejects on the first error (the pool stays usable for items already running elsewhere,
   * but should be closed).
   */
  map(items: readonly I[]): Promise<O[]> {
    const results = new Array<O>(items.length);
    if (items.length === 0) return Promise.resolve(results);
    return new Promise<O[]>((resolve, reject) => {
      let next = 0;
      let done = 0;
      let failed = false;
      const listeners: (() => void)[] = [];
      const finish = (err?: Error) => {
        for (const off of listeners) off();
        if (err) reject(err);
        else resolve(results);
      };
      const feed = (w: Worker) => {
        if (next >= items.length) return;
        const index = next++;
        const msg: ToWorker<I> = { type: 'item', index, item: items[index]! };
        w.postMessage(msg);
      };
      this.workers.forEach((w, id) => {
        const onMessage = (m: FromWorker<O>) => {
          if (failed) return;
          if (m.type === 'result') {
            results[m.index] = m.value;
            if (++done === items.length) finish();
            else feed(w);
          } else if (m.type === 'error') {
            failed = true;
            finish(workerError(id, m));
          }
        };
        const onError = (e: Error) => {
          if (failed) return;
          failed = true;
          finish(e);
        };
        const onExit = (code: number) => {
          if (failed) return;
          failed = true;
          finish(new Error(`worker ${id} exited with code ${code}`));
        };
        w.on('message', onMessage);
        w.on('error', onError);
        w.on('exit', onExit);
        listeners.push(() => {
          w.off('message', onMessage);
          w.off('error', onError);
          w.off('exit', onExit);
        });
      });
      for (const w of this.workers) feed(w);
    });
  }

  /** Ends every worker: those holding native work once it has settled, the others at once. */
  async close(): Promise<void> {
    this.unhook();
    await Promise.all(this.workers.map((w) => endWorker(w, this.native.has(w))));
  }
}

/** Ends a worker: at once, or (`graceful`) by asking it to settle its native work and end by itself. */
async function endWorker(w: Worker, graceful: boolean): Promise<void> {
  if (graceful && w.threadId !== -1) {
    const ended = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS);
      w.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    w.postMessage({ type: 'close' } satisfies ToWorker<never>);
    if (await ended) return;
  }
  await w.terminate();
}

/**
 * Yields `compute(item)` for every item, in input order: on the pool when there is one (a few items per
 * worker in flight at a time, so that the caller can checkpoint each result as it arrives), otherwise
 * with `inline` here, one item at a time. Either way the caller sees the same sequence.
 */
export async function* resultsInOrder<I, O>(
  items: readonly I[],
  pool: WorkerPool<I, O> | undefined,
  inline: (item: I) => O | Promise<O>,
): AsyncGenerator<O> {
  const step = pool ? 2 * pool.size : 1;
  if (items.length > 0) traceStart('first-image');
  for (let p = 0; p < items.length; p += step) {
    const chunk = items.slice(p, p + step);
    yield* pool ? await pool.map(chunk) : [await inline(chunk[0]!)];
  }
}

/** Inside a worker module started by WorkerPool: run `setup` once, then answer items with its handler. */
export function serveWorker<S, I, O>(
  setup: (setup: S, workerId: number) => Promise<(item: I) => O | Promise<O>>,
): void {
  if (isMainThread || !parentPort) throw new Error('serveWorker() must run in a worker started by WorkerPool');
  const port = parentPort;
  const { setup: setupData, id } = (workerData as PoolWorkerData<S>).workerPool;
  const send = (m: FromWorker<O>) => port.postMessage(m);
  const fail = (index: number | null, e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    send({ type: 'error', index, message: err.message, stack: err.stack });
  };
  onNativeHeld(() => send({ type: 'native' }));
  // Asked to end: once the native work in flight has settled (not the item: its result is no longer wanted).
  const close = () => settleNative().finally(() => process.exit(0));
  port.on('message', (m: ToWorker<I>) => {
    if (m.type === 'close') void close();
  });
  setup(setupData, id).then(
    (handle) => {
      // Items are processed one at a time, in arrival order (the pool sends one per free worker).
      let queue: Promise<void> = Promise.resolve();
      port.on('message', (m: ToWorker<I>) => {
        if (m.type !== 'item') return;
        queue = queue.then(async () => {
          try {
            send({ type: 'result', index: m.index, value: await handle(m.item) });
          } catch (e) {
            fail(m.index, e);
          }
        });
      });
      send({ type: 'ready' });
    },
    (e) => fail(null, e),
  );
}

function workerError(id: number, m: { index: number | null; message: string; stack?: string }): Error {
  const where = m.index === null ? 'during setup' : `on item ${m.index}`;
  const err = new Error(`worker ${id} failed ${where}: ${m.message}`);
  if (m.stack) err.stack = `${err.message}\n--- in the worker ---\n${m.stack}`;
  return err;
}
