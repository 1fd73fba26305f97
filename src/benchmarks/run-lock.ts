import { linkSync, mkdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FileFormatError } from '../formats/host-tensor.js';
import { processAlive } from '../util/files.js';
import { installStopHandlers } from '../util/interrupt.js';

/**
 * One run per output folder. A run holds `<out>/run.lock` (host, pid, start time, command) while it writes the
 * folder; a second process on the same folder is refused with one line naming the holder. The lock is created
 * atomically (written complete under a temporary name, then hard-linked to its name, which fails when the name
 * exists), so a reader never sees half a lock. A lock left by a process that is gone (same host, pid not alive:
 * a SIGKILL, a crash) is taken over with a warning; one from another host cannot be checked from here and needs
 * `--steal-lock`. The lock is removed when the run ends, fails or is stopped by a signal (an exit hook).
 */
export const LOCK_FILE = 'run.lock';

export interface LockHolder {
  host: string;
  pid: number;
  started: string;
  command: string;
}

export interface RunLock {
  readonly file: string;
  /** Removes the lock if it is still this process's (idempotent). */
  release(): void;
}

export class RunLockedError extends Error {
  override name = 'RunLockedError';
}

const held = new Set<RunLock>();
let exitHookInstalled = false;

/** Seconds since the epoch when process `pid` started (Linux /proc), or undefined where that cannot be read. */
function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime + ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process that wrote lock `h` (on this host) still runs: its pid is alive and, where /proc tells,
 * it started before the lock was written (not a later process that reuses the pid, e.g. after a restart).
 */
function sameProcessAlive(h: LockHolder): boolean {
  if (h.pid === process.pid) return false; // not held by this process (checked before): an earlier life of the pid
  if (!processAlive(h.pid)) return false;
  const start = processStart(h.pid);
  const locked = Date.parse(h.started) / 1000;
  return start === undefined || !Number.isFinite(locked) || start <= locked + 2;
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof h.host === 'string' && Number.isInteger(h.pid) && typeof h.started === 'string')
      return { host: h.host, pid: h.pid!, started: h.started, command: String(h.command ?? 'bench') };
  } catch {
    // unreadable or damaged: reported by the caller
  }
  return undefined;
}

function describe(h: LockHolder): string {
  return `${h.command}, pid ${h.pid} on host ${h.host}, started ${h.started}`;
}

/** Blocks the thread for `ms` (lock take-over races are rare and short). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the lock of run folder `dir` (created if missing) for `command`, or throws a RunLockedError naming the
 * holder. `steal`: take it whoever holds it (`--steal-lock`). `log` gets the warning of a take-over.
 */
export function acquireRunLock(
  dir: string,
  command: string,
  opts: { steal?: boolean; log?: (line: string) => void } = {},
): RunLock {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const file = join(dir, LOCK_FILE);
  const me: LockHolder = { host: hostname(), pid: process.pid, started: new Date().toISOString(), command };
  const text = `${JSON.stringify(me)}\n`;
  const tmp = `${file}.tmp-${process.pid}`;
  // The first folder this lock had to create (undefined when `dir` existed): removed again on release while empty,
  // so that a run refused before it wrote anything leaves nothing behind.
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true });
    writeFileSync(tmp, text);
  } catch (e) {
    throw new FileFormatError(file, `cannot create the run lock (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let warning: string | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, file);
        if (warning) log(warning);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          throw new FileFormatError(file, `cannot create the run lock (${(e as NodeJS.ErrnoException).code ?? e})`);
      }
      const holder = readHolder(file);
      let why: string | undefined;
      if (opts.steal) why = `--steal-lock: taking over the lock of ${holder ? describe(holder) : 'an unreadable lock'}`;
      else if (!holder) {
        throw new RunLockedError(
          `${file}: the run lock is unreadable or damaged, so whether another process uses ${dir} cannot be told; if none does, run again with --steal-lock`,
        );
      } else if (holder.host === me.host && holder.pid === process.pid && [...held].some((l) => l.file === file)) {
        throw new RunLockedError(`${dir} is already in use by this process (${describe(holder)})`);
      } else if (holder.host === me.host && !sameProcessAlive(holder)) {
        why = `the run that held it is gone (${describe(holder)}); taking it over`;
      } else if (holder.host === me.host) {
        throw new RunLockedError(
          `${dir} is in use by another run (${describe(holder)}; ${file}); wait for it to end, or use another --out`,
        );
      } else {
        throw new RunLockedError(
          `${dir} is locked by a run on another host (${describe(holder)}; ${file}); if that run has ended, run again with --steal-lock`,
        );
      }
      if (attempt >= 20)
        throw new RunLockedError(`${file}: could not take over the run lock (other processes keep taking it)`);
      // Take over: move the old lock aside under a name of our own, then link ours. Two processes taking over
      // at once: only one rename finds the old lock; the other retries and then sees a live holder.
      const aside = `${file}.stale-${process.pid}`;
      try {
        renameSync(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new FileFormatError(file, `cannot take over the run lock (${(e as NodeJS.ErrnoException).code ?? e})`);
        pause(5);
        continue;
      }
      const moved = readHolder(aside);
      if (!opts.steal && holder && (!moved || moved.pid !== holder.pid || moved.started !== holder.started)) {
        // Another process took it over between our read and our rename: its lock is live, put it back.
        try {
          linkSync(aside, file);
        } catch {
          // a third process holds it now: the retry reports it
        }
      } else {
        warning = `warning: ${file}: ${why}`;
      }
      try {
        unlinkSync(aside);
      } catch {
        // already gone
      }
      pause(5);
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
  const lock: RunLock = {
    file,
    release() {
      if (!held.delete(lock)) return;
      const h = readHolder(file);
      if (h && h.pid === me.pid && h.host === me.host && h.started === me.started) {
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      }
      if (created) removeEmptyUpTo(dir, created);
    },
  };
  held.add(lock);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const l of [...held]) l.release();
    });
  }
  return lock;
}

/** Removes `dir` and its parents up to `top` (inclusive) while they are empty. */
function removeEmptyUpTo(dir: string, top: string): void {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (the run wrote something), or already gone
    }
    if (d === resolve(top) || dirname(d) === d) return;
  }
}

/**
 * Runs `work` holding the lock of `dir`, released when it ends (or throws). The commands that write run folders
 * go through here, so this is also where SIGINT/SIGTERM get their checkpoint-then-stop handling (util/interrupt.ts).
 */
export async function withRunLock<T>(
  dir: string,
  command: string,
  steal: boolean | undefined,
  work: () => Promise<T>,
): Promise<T> {
  const lock = acquireRunLock(dir, command, { steal });
  installStopHandlers();
  try {
    return await work();
  } finally {
    lock.release();
  }
}
