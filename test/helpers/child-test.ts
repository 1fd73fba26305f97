import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * Runs one test file in a child test runner with extra environment variables, and returns its exit code and
 * output. NODE_TEST_CONTEXT is removed: with it, the child runner would defer to this one and run nothing.
 */
export function runTestFile(file: string, env: Record<string, string>, timeout = 300_000) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', resolve(import.meta.dirname, '..', file)], {
    encoding: 'utf8',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env },
    timeout,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}
