/**
 * Native asynchronous work that must settle before its thread ends.
 *
 * onnxruntime-node runs a session on its own threads and resolves the JavaScript promise from a completion
 * callback. If the worker thread that awaits it is terminated in between (`Worker.terminate()`, or the process
 * exiting while workers run), that callback meets a torn-down environment, throws a C++ `Napi::Error` that
 * nothing catches, and the whole process aborts ("terminate called after throwing an instance of
 * 'Napi::Error'"): a run that should have ended with one error line dies with SIGABRT instead.
 *
 * So whoever starts such work registers it here: `holdNative(release)` once per resource (a session), and
 * starts each call through `runNative(start)`. `settleNative()` refuses new calls, waits for those in flight and
 * releases the resources; a worker of `WorkerPool` runs it when the pool closes, and only then ends
 * (worker-pool.ts).
 */
import { isMainThread } from 'node:worker_threads';
import { beforeStopAtOnce } from '../util/interrupt.js';

const inFlight = new Set<Promise<unknown>>();
const releases: (() => Promise<void>)[] = [];
const heldListeners: (() => void)[] = [];
let settling = false;

/** Calls `listener` when this thread first holds a native resource (at once if it already does). */
export function onNativeHeld(listener: () => void): void {
  if (releases.length > 0) listener();
  else heldListeners.push(listener);
}

/** Registers a native resource and how to release it. */
export function holdNative(release: () => Promise<void>): void {
  releases.push(release);
  if (releases.length > 1) return;
  for (const l of heldListeners.splice(0)) l();
  // On the main thread, a stop at once on a signal settles first too.
  if (isMainThread) beforeStopAtOnce(settleNative);
}

/**
 * Starts a native call and keeps it in view until it settles. Once settleNative() has begun, no call starts and
 * the promise never settles: the thread is ending, and its caller should neither go on nor report an error.
 */
export function runNative<T>(start: () => Promise<T>): Promise<T> {
  if (settling) return new Promise<T>(() => undefined);
  const work = start();
  inFlight.add(work);
  const done = () => inFlight.delete(work);
  work.then(done, done);
  return work;
}

/**
 * Refuses further native calls, waits until those in flight have settled, then releases every registered
 * resource (errors of either are ignored: the thread is ending).
 */
export async function settleNative(): Promise<void> {
  settling = true;
  await Promise.allSettled([...inFlight]);
  for (const release of releases.splice(0).reverse()) await release().catch(() => undefined);
}
