import {
  accessSync,
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FileFormatError } from '../formats/host-tensor.js';

/**
 * Why a write failed, for the one error line: a full disk, an I/O error or a read-only file system says what to
 * do (the run's checkpoint is intact, so --resume continues it).
 */
export function writeErrorReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOSPC':
      return 'cannot write: no space left on device (ENOSPC); free space and run again with --resume';
    case 'EDQUOT':
      return 'cannot write: disk quota exceeded (EDQUOT); free space and run again with --resume';
    case 'EIO':
      return 'cannot write: input/output error (EIO); check the disk (or move the folder), free space if it is full, and run again with --resume';
    case 'EROFS':
      return 'cannot write: read-only file system (EROFS); make it writable (or move the folder) and run again with --resume';
    default:
      return `cannot write output (${code ?? (e instanceof Error ? e.message : String(e))})`;
  }
}

/**
 * Test-only fault injection: BENCH_FAULT_WRITE=CODE:N (e.g. ENOSPC:7) makes the Nth write through these helpers
 * in this process fail with that errno code, as a full disk would (test/run-write-errors.test.ts).
 */
let writes = 0;
function injectedFault(): void {
  const spec = process.env.BENCH_FAULT_WRITE;
  if (!spec) return;
  const [code, n] = spec.split(':');
  if (++writes === Number(n))
    throw Object.assign(new Error(`${code}: injected write fault`), { code, errno: -28, syscall: 'write' });
}

/**
 * Write a whole file atomically: a temp file in the same folder, flushed, then renamed over the target,
 * so a crash never leaves a half-written result. Errors name the file; a failed write leaves no temp file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      injectedFault();
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // not created, or already renamed
    }
    throw new FileFormatError(file, writeErrorReason(e));
  }
}

/**
 * For writers that do not report errno codes (HDF5 through h5wasm): `e`, or, when the disk holding `file` has
 * (almost) no space left, the full-disk error naming the file.
 */
export function diskFullOr(e: unknown, file: string): unknown {
  try {
    const s = statfsSync(dirname(file));
    if (s.bavail * s.bsize < 1 << 20) return new FileFormatError(file, writeErrorReason({ code: 'ENOSPC' }));
  } catch {
    // no statfs here: the original error
  }
  return e;
}

/** appendFileSync whose failure is one line naming the file (a full disk: what to do). */
export function appendFileChecked(file: string, data: string): void {
  try {
    injectedFault();
    appendFileSync(file, data);
  } catch (e) {
    throw new FileFormatError(file, writeErrorReason(e));
  }
}

/** writeFileSync (not atomic: a checkpointed run's growing file) whose failure is one line naming the file. */
export function writeFileChecked(file: string, data: string): void {
  try {
    injectedFault();
    writeFileSync(file, data);
  } catch (e) {
    throw new FileFormatError(file, writeErrorReason(e));
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Whether a process of this pid exists on this host (signal 0; EPERM: it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files that a killed process left behind (`<file>.tmp-<pid>` of a pid that is gone), so a
 * resumed run's folder holds exactly what an uninterrupted run's does. Returns the files removed.
 */
export function removeStaleTempFiles(dir: string, depth = 3): string[] {
  const removed: string[] = [];
  if (!existsSync(dir)) return removed;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const m = /\.tmp-(\d+)$/.exec(e);
    if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) {
      unlinkSync(p);
      removed.push(p);
    } else if (depth > 0 && statSync(p).isDirectory()) {
      removed.push(...removeStaleTempFiles(p, depth - 1));
    }
  }
  return removed;
}

/**
 * Checks, before any work starts, that an output can be written where the user asked: a file path must not be a
 * folder, a folder path must not be a file, and the nearest existing folder above must be a writable folder (it is
 * where the missing ones get created). An hour-long run must not fail at its first write. `option` names the
 * option in the message (e.g. `--json`).
 */
export function checkOutputPath(path: string, kind: 'file' | 'folder', option: string): void {
  const target = resolve(path);
  const fail = (why: string): never => {
    throw new FileFormatError(path, `cannot write ${option} here: ${why}`);
  };
  const st = statOrNull(target);
  if (st) {
    if (kind === 'file' && st.isDirectory()) fail('it is a folder, expected a file name');
    if (kind === 'folder' && !st.isDirectory()) fail('it is a file, expected a folder');
    if (!writable(target)) fail(`${kind === 'file' ? 'the file' : 'the folder'} is not writable`);
    if (kind === 'file' && !writable(dirname(target))) fail(`its folder ${dirname(target)} is not writable`);
    return;
  }
  let dir = dirname(target);
  for (;;) {
    const s = statOrNull(dir);
    if (s) {
      if (!s.isDirectory()) fail(`${dir} is a file, so no folder can be created in it`);
      if (!writable(dir)) fail(`${dir} is not writable`);
      return;
    }
    const up = dirname(dir);
    if (up === dir) return;
    dir = up;
  }
}

function statOrNull(p: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') return null; // a file somewhere above: reported when the walk reaches it
    throw new FileFormatError(p, `cannot check the output path (${code ?? (e as Error).message})`);
  }
}

function writable(p: string): boolean {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
