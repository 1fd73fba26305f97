import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Rng } from '../src/util/random.js';
import { BIN, bench } from './helpers/cli.js';
import { assertSameExplanationRows, filesUnder, withoutTimings } from './helpers/run-outputs.js';

/**
 * Never lose work: a run killed with SIGKILL at a random moment and continued with --resume ends with the
 * output of an uninterrupted run. Each run here is killed twice (once while fresh, once while resuming).
 */
const rng = new Rng(20261126);

/**
 * Starts `bench args` and kills it with SIGKILL as soon as `progress()` (the fraction of the work that its
 * checkpoint files show as done) reaches `at`. The kill is tied to checkpointed progress, not to a clock, so
 * it lands mid-run on a fast machine and on a slow one: `at` ≤ 0.75 leaves a quarter of the items to do,
 * many times the 10 ms polling interval. A run that ends by itself before it is killed fails the test.
 */
async function killAt(args: string[], progress: () => number, at: number): Promise<void> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const done = new Promise<void>((res) =>
    child.on('exit', (code, signal) => {
      ended = { code, signal };
      res();
    }),
  );
  const deadline = Date.now() + 300_000;
  let seen = progress();
  while (!ended && seen < at && Date.now() < deadline) {
    await sleep(10);
    seen = progress();
  }
  if (!ended) child.kill('SIGKILL');
  await done;
  assert.equal(
    ended?.signal,
    'SIGKILL',
    `bench ${args.join(' ')} ended by itself (exit ${ended?.code}) before reaching ${at.toFixed(2)} of its work (seen ${seen.toFixed(2)}):\n${stderr}`,
  );
}

/**
 * Kills a run twice at seeded random points of its progress (once fresh, once while resuming), then lets
 * `--resume` finish it. `finalFile` must not exist after either kill: the run was really cut short.
 */
async function killTwiceThenResume(args: string[], out: string, progress: () => number, finalFile: string) {
  const first = 0.15 + 0.25 * rng.next();
  const second = 0.5 + 0.25 * rng.next();
  await killAt(args, progress, first);
  assert.ok(!existsSync(join(out, finalFile)), `${finalFile} exists after the first kill`);
  const resumedFrom = progress();
  assert.ok(resumedFrom > 0 && resumedFrom < second, `progress after the first kill: ${resumedFrom}`);
  await killAt([...args, '--resume'], progress, second);
  assert.ok(!existsSync(join(out, finalFile)), `${finalFile} exists after the second kill`);
  assert.ok(progress() >= second, "the resumed run kept the first run's work and went on");
  const r = bench([...args, '--resume']);
  assert.equal(r.code, 0, r.stderr);
}

function lines(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').length - 1;
  } catch {
    return 0;
  }
}

function jsonField(file: string, key: string): number {
  try {
    return Number(JSON.parse(readFileSync(file, 'utf8'))[key] ?? 0);
  } catch {
    return 0;
  }
}

describe('SIGKILL at a random point of the progress, then --resume', () => {
  test('bench seg --workers 2: per_image.csv, saved panels and summary equal an uninterrupted one-worker run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-seg-'));
    const args = ['seg', '--limit', '20', '--method', 'all', '--save-img', '20', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    // The killed and resumed runs compute on two worker threads; the reference run on the main thread.
    await killTwiceThenResume(
      [...args, '--workers', '2', '--out', out],
      out,
      () => jsonField(join(out, 'state.json'), 'nextIndex') / 20,
      'summary.json',
    );
    assert.deepEqual(filesUnder(out), filesUnder(join(dir, 'whole')));
    // Byte for byte, except the files that carry wall-clock timings.
    for (const f of filesUnder(out).filter((f) => !['summary.json', 'summary.md', 'state.json'].includes(f)))
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
    const untimed = (f: string) => readFileSync(f, 'utf8').replace(/[\d.]+ s per image/, '');
    assert.equal(untimed(join(out, 'summary.md')), untimed(join(dir, 'whole', 'summary.md')));
    assert.deepEqual(withoutTimings(join(out, 'summary.json')), withoutTimings(join(dir, 'whole', 'summary.json')));
  });

  test('bench eraser: every output file is byte-identical to an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-eraser-'));
    const args = ['eraser', '--limit', '30', '--method', 'all', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    await killTwiceThenResume(
      [...args, '--out', out],
      out,
      () => lines(join(out, 'documents.jsonl')) / 30,
      'summary.json',
    );
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
  });

  test('bench visualize: every file holds the rows of an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-vis-'));
    const args = ['visualize', '--method', 'all', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    // Progress: the HDF5 files grow as rows are appended, so their size against the finished file's.
    const size = (d: string) => {
      try {
        return statSync(join(d, 'rollout', 'top', 'results.hdf5')).size;
      } catch {
        return 0;
      }
    };
    const whole = size(join(dir, 'whole'));
    assert.ok(whole > 24 * 1000, `the uninterrupted run's file: ${whole} bytes`);
    await killTwiceThenResume([...args, '--out', out], out, () => size(out) / whole, 'visualize-top.json');
    const summary = withoutTimings(join(out, 'visualize-top.json')) as {
      files: Record<string, string>;
      images: number;
    };
    assert.equal(summary.images, 24);
    for (const m of Object.keys(summary.files)) {
      await assertSameExplanationRows(
        join(dir, 'whole', m, 'top', 'results.hdf5'),
        join(out, m, 'top', 'results.hdf5'),
      );
    }
    assert.ok(!filesUnder(out).some((f) => /\.tmp-\d+$/.test(f)), 'a temp file was left behind');
  });

  test('bench perturb --workers 2 --batch-size 1: every output file is byte-identical to an uninterrupted one-worker run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-perturb-'));
    const vis = join(dir, 'vis');
    const v = bench(['visualize', '--method', 'rollout,transformer_attribution', '--quiet', '--out', vis]);
    assert.equal(v.code, 0, v.stderr);
    const args = ['perturb', '--vis-dir', vis, '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    // Progress: the rows the checkpoint records as done, over 24 rows × 2 files × 2 settings.
    const done = () => {
      try {
        const s = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as {
          runs: Record<string, { nextRow: number }>;
        };
        return Object.values(s.runs).reduce((n, r) => n + r.nextRow, 0) / (24 * 2 * 2);
      } catch {
        return 0;
      }
    };
    await killTwiceThenResume(
      [...args, '--workers', '2', '--batch-size', '1', '--out', out],
      out,
      done,
      'summary.json',
    );
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
  });
});
