/**
 * SIGINT (Ctrl-C) and SIGTERM (what Slurm and Kubernetes send before they kill): a checkpointed run finishes
 * the item in flight, writes its checkpoint, and stops with "stopped after N of M items; continue with
 * --resume", exit status 130 / 143. A second signal stops at once: the checkpoint on disk is valid then too,
 * as after a SIGKILL. Outside a checkpointed loop (start-up, final summaries) the first signal stops at once.
 *
 * The commands that write run folders call installStopHandlers(); the benchmark loops bracket their items
 * with watchStop() and await stopPoint() after each checkpoint.
 */
const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

let requested: NodeJS.Signals | undefined;
let watching = 0;
let installed = false;

/** Thrown by a loop that stopped on a signal: cli.ts prints its message and exits with `exitCode`. */
export class RunStopped extends Error {
  override name = 'RunStopped';
  constructor(
    readonly signal: NodeJS.Signals,
    done: number,
    total: number,
  ) {
    super(`${signal}: stopped after ${done} of ${total} items; continue with --resume`);
  }
  get exitCode(): number {
    return CODES[this.signal] ?? 1;
  }
}

/** What must end before the process stops at once (worker pools holding native work, worker-pool.ts). */
const atOnceHooks = new Set<() => Promise<void>>();
/** The longest a stop at once waits for those hooks. */
const AT_ONCE_GRACE_MS = 5_000;

/**
 * Registers `hook` to run (and be awaited, at most AT_ONCE_GRACE_MS) before the process stops at once on a
 * signal; returns its removal.
 */
export function beforeStopAtOnce(hook: () => Promise<void>): () => void {
  atOnceHooks.add(hook);
  return () => atOnceHooks.delete(hook);
}

let stoppingAtOnce = false;

function onSignal(signal: NodeJS.Signals): void {
  if (requested || watching === 0) {
    if (stoppingAtOnce) return;
    stoppingAtOnce = true;
    process.stderr.write(
      `\nbench: ${signal}: stopped at once; the checkpoint on disk is valid: continue with --resume\n`,
    );
    const exit = () => process.exit(CODES[signal] ?? 1);
    if (atOnceHooks.size === 0) exit();
    const grace = setTimeout(exit, AT_ONCE_GRACE_MS);
    void Promise.allSettled([...atOnceHooks].map((h) => h())).then(() => {
      clearTimeout(grace);
      exit();
    });
    return;
  }
  requested = signal;
  process.stderr.write(`\nbench: ${signal}: finishing the item in flight (send it again to stop at once)\n`);
}

/** Installs the handlers (once per process). */
export function installStopHandlers(): void {
  if (installed) return;
  installed = true;
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, onSignal);
}

/** Marks a checkpointed loop as running (signals then wait for its next checkpoint); returns the end mark. */
export function watchStop(): () => void {
  watching++;
  let ended = false;
  return () => {
    if (!ended) watching--;
    ended = true;
  };
}

/**
 * After a checkpoint: gives the event loop one turn (a run on the main thread only awaits promises that resolve
 * at once, so a signal would otherwise wait for the end of the run), then throws RunStopped when a stop was asked
 * for.
 */
export async function stopPoint(done: number, total: number): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (requested) throw new RunStopped(requested, done, total);
}

/** Test use: forget a requested stop. */
export function resetStopRequest(): void {
  requested = undefined;
}
