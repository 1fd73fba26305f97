import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { acquireRunLock, LOCK_FILE, RunLockedError } from '../src/benchmarks/run-lock.js';
import { bench, benchAsync } from './helpers/cli.js';
import { withoutTimings } from './helpers/run-outputs.js';

/** One run per output folder (src/benchmarks/run-lock.ts): a second process is refused, a stale lock taken over. */

/** stderr without the launcher's note (dist/ missing or stale) and the start-up lines. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^bench: error:/.test(l) || /^warning:/.test(l));
}

/** The pid of a process that has ended (so, on this host, not alive unless reused meanwhile). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function writeLock(dir: string, holder: { host: string; pid: number; started?: string; command?: string }) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, LOCK_FILE),
    JSON.stringify({ started: new Date().toISOString(), command: 'bench seg', ...holder }),
  );
}

const SEG = ['seg', '--limit', '16', '--method', 'rollout,transformer_attribution', '--quiet'];

describe('run lock', () => {
  test('two concurrent --resume runs on one folder: one runs, the other is refused naming the holder; the files equal an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-lock-'));
    const out = join(dir, 'twice');
    const [a, b, ref] = await Promise.all([
      benchAsync([...SEG, '--out', out, '--resume']),
      benchAsync([...SEG, '--out', out, '--resume']),
      benchAsync([...SEG, '--out', join(dir, 'whole')]),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 1], `exit statuses ${a.code}, ${b.code}:\n${a.stderr}\n${b.stderr}`);
    const refused = a.code === 1 ? a : b;
    const errors = errorLines(refused.stderr);
    assert.equal(errors.length, 1, refused.stderr);
    assert.match(
      errors[0]!,
      /^bench: error: .*twice is in use by another run \(bench seg, pid \d+ on host .*, started /,
    );
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    const csv = readFileSync(join(out, 'per_image.csv'), 'utf8');
    assert.equal(csv.split('\n').length - 1, 1 + 16 * 2, 'a header and one row per image and method');
    assert.equal(csv, readFileSync(join(dir, 'whole', 'per_image.csv'), 'utf8'));
    assert.deepEqual(withoutTimings(join(out, 'summary.json')), withoutTimings(join(dir, 'whole', 'summary.json')));
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released at the end');
  });

  test('a lock of a live process on this host refuses the run; one from another host needs --steal-lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-lock-live-'));
    const out = join(dir, 'out');
    writeLock(out, { host: hostname(), pid: process.pid });
    const r = bench([...SEG, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(errorLines(r.stderr), [
      `bench: error: ${out} is in use by another run (bench seg, pid ${process.pid} on host ${hostname()}, started ${JSON.parse(readFileSync(join(out, LOCK_FILE), 'utf8')).started}; ${join(out, LOCK_FILE)}); wait for it to end, or use another --out`,
    ]);
    assert.ok(!existsSync(join(out, 'run.json')), 'nothing was written');

    writeLock(out, { host: 'elsewhere.example', pid: 4242 });
    const o = bench([...SEG, '--out', out]);
    assert.equal(o.code, 1, o.stderr);
    const e = errorLines(o.stderr);
    assert.equal(e.length, 1, o.stderr);
    assert.match(
      e[0]!,
      /locked by a run on another host \(bench seg, pid 4242 on host elsewhere\.example.*run again with --steal-lock$/,
    );

    const s = bench([...SEG, '--out', out, '--steal-lock']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(
      s.stderr,
      /warning: .*run\.lock: --steal-lock: taking over the lock of bench seg, pid 4242 on host elsewhere\.example/,
    );
    assert.ok(existsSync(join(out, 'summary.json')));
    assert.ok(!existsSync(join(out, LOCK_FILE)));
  });

  test('every command that writes a run folder refuses a folder held by a live run, and writes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-lock-commands-'));
    const vis = join(dir, 'vis');
    assert.equal(bench(['visualize', '--method', 'rollout', '--limit', '2', '--quiet', '--out', vis]).code, 0);
    const shards = [0, 1].map((k) => join(dir, `shard-${k}`));
    for (const [k, sh] of shards.entries()) {
      const seg = ['seg', '--limit', '4', '--method', 'rollout', '--shard', `${k}/2`, '--quiet', '--out', sh];
      assert.equal(bench(seg).code, 0);
    }
    for (const [name, args] of [
      ['seg', SEG],
      ['visualize', ['visualize', '--method', 'rollout', '--quiet']],
      ['perturb', ['perturb', '--vis-dir', vis, '--quiet']],
      ['eraser', ['eraser', '--split', 'test', '--method', 'rollout', '--quiet']],
      ['merge', []],
    ] as const) {
      const out = join(dir, `out-${name}`);
      writeLock(out, { host: hostname(), pid: process.pid, command: 'bench other' });
      const r = bench(name === 'merge' ? ['merge', out, ...shards] : [...args, '--out', out]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      const e = errorLines(r.stderr);
      assert.equal(e.length, 1, `${name}: ${r.stderr}`);
      assert.match(
        e[0]!,
        new RegExp(`^bench: error: ${out} is in use by another run \\(bench other, pid ${process.pid} `),
      );
      assert.deepEqual(readdirSync(out), [LOCK_FILE], `${name} wrote into a locked folder`);
    }
  });

  test('a stale lock (this host, the process gone) is taken over with a warning and the run resumes to the end', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-lock-stale-'));
    const out = join(dir, 'out');
    const pid = deadPid();
    writeLock(out, { host: hostname(), pid });
    const r = bench([...SEG, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    const w = errorLines(r.stderr);
    assert.equal(w.length, 1, r.stderr);
    assert.match(
      w[0]!,
      new RegExp(`^warning: .*run\\.lock: the run that held it is gone \\(bench seg, pid ${pid} on host `),
    );
    assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).images, 16);
    assert.ok(!existsSync(join(out, LOCK_FILE)));
  });

  test('in one process: a held lock refuses, a released one is free again, a damaged one needs --steal-lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-lock-unit-'));
    const lock = acquireRunLock(dir, 'test', { log: () => {} });
    const holder = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.host, hostname());
    assert.ok(!Number.isNaN(Date.parse(holder.started)));
    assert.throws(() => acquireRunLock(dir, 'test'), RunLockedError);
    lock.release();
    assert.ok(!existsSync(join(dir, LOCK_FILE)));
    acquireRunLock(dir, 'test').release();
    writeFileSync(join(dir, LOCK_FILE), '{"host":"vm","pi');
    assert.throws(() => acquireRunLock(dir, 'test'), /unreadable or damaged.*--steal-lock/);
    const logged: string[] = [];
    const stolen = acquireRunLock(dir, 'test', { steal: true, log: (s) => logged.push(s) });
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /--steal-lock: taking over the lock of an unreadable lock/);
    stolen.release();
    assert.ok(!existsSync(join(dir, LOCK_FILE)));
  });
});
