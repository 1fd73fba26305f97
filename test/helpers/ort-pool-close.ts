/**
 * Child process of test/worker-pool-native.test.ts: starts a pool of two onnxruntime workers, hands each a slow
 * item, and ends it while the sessions run:
 * - `close`: pool.close(), as a failing run does when another worker reports an error; prints how long the close
 *   took and exits 0;
 * - `signal`: a SIGINT outside a checkpointed loop (bench's stop at once): exits 130.
 * Terminating a worker in the middle of a session's run aborts the process (SIGABRT, "terminate called after
 * throwing an instance of 'Napi::Error'"); both ways must avoid it.
 */
import { siblingModule, WorkerPool } from '../../src/engine/worker-pool.js';
import { installStopHandlers } from '../../src/util/interrupt.js';

const mode = process.argv[2] ?? 'close';
installStopHandlers();
const pool = await WorkerPool.start<{ batch: number; repeat: number }, { seed: number }, number>(
  siblingModule('./ort-pool-worker', import.meta.url),
  2,
  { batch: 8, repeat: 1000 },
);
const running = pool.map([{ seed: 1 }, { seed: 2 }]).catch(() => undefined);
await new Promise((r) => setTimeout(r, 500));
if (mode === 'signal') {
  process.kill(process.pid, 'SIGINT');
  await running;
} else {
  const t0 = performance.now();
  await pool.close();
  process.stdout.write(`closed in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
}
