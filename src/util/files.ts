import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { FileFormatError } from '../formats/host-tensor.js';

/**
 * Write a whole file atomically: a temp file in the same folder, flushed, then renamed over the target,
 * so a crash never leaves a half-written result. Errors name the file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    throw new FileFormatError(
      file,
      `cannot write output (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

function processAlive(pid: number): boolean {
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
