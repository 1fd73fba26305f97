import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export const BIN = resolve(import.meta.dirname, '../../bin/bench.js');

/** Run the `bench` command line as a user would; returns the exit code and both streams. */
export function bench(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 600_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
