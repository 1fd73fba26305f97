import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { FuzzReport } from './helpers/fuzz.js';

/**
 * Mutation fuzzing of every binary reader (test/helpers/fuzz.ts): each mutated file must give well-formed data or a
 * FileFormatError naming the file, one line, never another exception, a malformed result or a hang. Each target
 * runs in a worker thread so that a case stuck in a loop is stopped by the watchdog, which names it. Seeds are
 * fixed: a failure reproduces with the same case number. FUZZ_SCALE=10 runs ten times as many cases.
 */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
/**
 * A worker that reports no new case for this long is hung. Cases take milliseconds (the slowest seen: about
 * 0.4 s, with ten processes on two cores), so a minute tells a loop from a slow machine; no case is failed for being slow.
 */
const HANG_MS = 60_000;

const PLAN: [target: string, cases: number][] = [
  ['safetensors', 1500],
  ['npy', 1000],
  ['npz', 800],
  ['pth-zip', 800],
  ['pth-legacy', 800],
  ['mat5', 800],
  ['hdf5-gtsegs', 500],
  ['hdf5-expl', 500],
];

function runInWorker(target: string, cases: number, seed: number): Promise<FuzzReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./helpers/ts-worker.mjs', import.meta.url), {
      workerData: {
        entry: new URL('./helpers/fuzz-worker.ts', import.meta.url).href,
        target,
        cases,
        seed,
      },
    });
    let last = 'before the first case';
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`${target}: no progress for ${HANG_MS} ms: hung in ${last}`));
      }, HANG_MS);
    };
    arm();
    worker.on('message', (m: { type: string; desc?: string; report?: FuzzReport }) => {
      if (m.type === 'progress') {
        last = m.desc!;
        arm();
      } else if (m.type === 'done') {
        clearTimeout(timer);
        void worker.terminate();
        resolve(m.report!);
      }
    });
    worker.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${target}: the worker died in ${last}: ${e.message}`));
    });
    worker.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${target}: the worker exited (${code}) in ${last}`));
    });
  });
}

for (const [i, [target, cases]] of PLAN.entries()) {
  test(`fuzz ${target}: ${Math.round(cases * SCALE)} mutated files give data or one clear FileFormatError`, async () => {
    const r = await runInWorker(target, Math.round(cases * SCALE), 1000 + i);
    const top = Object.entries(r.messages)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([m, n]) => `${n}× ${m}`)
      .join('\n    ');
    process.stderr.write(
      `fuzz ${target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (slowest ${r.slowestMs.toFixed(0)} ms): ` +
        `${r.same} same data, ${r.changed} other well-formed data, ${r.errors} FileFormatErrors\n    ${top}\n`,
    );
    assert.deepEqual(r.failures.slice(0, 20), [], `${r.failures.length} bad outcomes`);
    // The work is counted: every planned case ran and had one outcome.
    assert.equal(r.same + r.changed + r.errors, Math.round(cases * SCALE), 'cases with an outcome');
    assert.ok(r.errors > 0, 'the mutations reach the checks');
  });
}
