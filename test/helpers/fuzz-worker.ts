import { parentPort, workerData } from 'node:worker_threads';
import { runTarget } from './fuzz.js';

const { target, cases, seed } = workerData as { target: string; cases: number; seed: number };
// A message before every case: the watchdog's heartbeat and, should the case hang, its description.
const report = await runTarget(target, cases, seed, (i, desc) =>
  parentPort!.postMessage({ type: 'progress', i, desc }),
);
parentPort!.postMessage({ type: 'done', report });
