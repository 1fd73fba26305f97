import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCK_FILE } from '../src/benchmarks/run-lock.js';
import { BIN, bench, benchAsync } from './helpers/cli.js';
import { assertSameExplanationRows, filesUnder, withoutTimings } from './helpers/run-outputs.js';

/**
 * SIGTERM (what Slurm sends before it kills) and SIGINT (Ctrl-C) in the middle of a run: the item in flight is
 * finished, the checkpoint written, "stopped after N of M items; continue with --resume" printed, exit 143 / 130,
 * the run lock released; --resume then ends with the files of an uninterrupted run. A second signal stops at once.
 */

interface Stopped {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** The progress seen when the (first) signal was sent. */
  seen: number;
}

/**
 * Starts `bench args`, and sends `signals` (one after the other, 20 ms apart) once `progress()` reaches `at`.
 * Fails when the run ends by itself first.
 */
async function signalAt(args: string[], progress: () => number, at: number, signals: NodeJS.Signals[]) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  let ended = false;
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('close', (code, signal) => {
      ended = true;
      res({ code, signal });
    }),
  );
  const deadline = Date.now() + 300_000;
  let seen = progress();
  while (!ended && seen < at && Date.now() < deadline) {
    await sleep(10);
    seen = progress();
  }
  assert.ok(!ended, `bench ${args.join(' ')} ended by itself before ${at} of its work:\n${stderr}`);
  for (const [k, s] of signals.entries()) {
    if (k) await sleep(20);
    child.kill(s);
  }
  const r = await done;
  return { ...r, stderr, seen } satisfies Stopped;
}

/** The stop line: N and M of "stopped after N of M items". */
function stopLine(r: Stopped, signal: string): { done: number; total: number } {
  const m = new RegExp(`^bench: ${signal}: stopped after (\\d+) of (\\d+) items; continue with --resume$`, 'm').exec(
    r.stderr,
  );
  assert.ok(m, `no stop line in:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /bench: error:|\n\s+at /, 'no error, no stack trace');
  return { done: Number(m[1]), total: Number(m[2]) };
}

function lines(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').length - 1;
  } catch {
    return 0;
  }
}

function json(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

describe('SIGTERM / SIGINT mid-run, then --resume', () => {
  test('bench seg: SIGTERM → exit 143 after a checkpoint; --resume ends equal to an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-sig-seg-'));
    const args = ['seg', '--limit', '24', '--method', 'rollout,transformer_attribution', '--quiet'];
    const out = join(dir, 'cut');
    const progress = () => Number(json(join(out, 'state.json'))?.nextIndex ?? 0) / 24;
    const [ref, r] = await Promise.all([
      benchAsync([...args, '--out', join(dir, 'whole')]),
      signalAt([...args, '--out', out], progress, 0.2, ['SIGTERM']),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.equal(r.code, 143, r.stderr);
    const { done, total } = stopLine(r, 'SIGTERM');
    assert.equal(total, 24);
    assert.ok(done >= Math.floor(r.seen * 24) && done < 24, `stopped after ${done} (seen ${r.seen * 24})`);
    assert.equal(json(join(out, 'state.json'))?.nextIndex, done, 'the checkpoint holds every finished image');
    assert.equal(lines(join(out, 'per_image.csv')), 1 + 2 * done);
    assert.ok(!existsSync(join(out, 'summary.json')));
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released');
    const res = bench([...args, '--out', out, '--resume']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, new RegExp(`resuming .* at image ${done}`));
    assert.equal(
      readFileSync(join(out, 'per_image.csv'), 'utf8'),
      readFileSync(join(dir, 'whole', 'per_image.csv'), 'utf8'),
    );
    assert.deepEqual(withoutTimings(join(out, 'summary.json')), withoutTimings(join(dir, 'whole', 'summary.json')));
  });

  test('bench eraser: SIGINT → exit 130; a second SIGINT stops at once; --resume ends byte-identical', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-sig-eraser-'));
    const args = ['eraser', '--limit', '30', '--method', 'all', '--quiet'];
    const out = join(dir, 'cut');
    const progress = () => lines(join(out, 'documents.jsonl')) / 30;
    const [ref, r] = await Promise.all([
      benchAsync([...args, '--out', join(dir, 'whole')]),
      signalAt([...args, '--out', out], progress, 0.2, ['SIGINT']),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.equal(r.code, 130, r.stderr);
    const { done, total } = stopLine(r, 'SIGINT');
    assert.equal(total, 30);
    assert.equal(lines(join(out, 'documents.jsonl')), done);
    assert.ok(!existsSync(join(out, LOCK_FILE)));
    // Resumed, then two SIGINTs 20 ms apart: the second one does not wait for the document in flight.
    const twice = await signalAt([...args, '--out', out, '--resume'], progress, Math.min(0.9, (done + 3) / 30), [
      'SIGINT',
      'SIGINT',
    ]);
    assert.equal(twice.code, 130, twice.stderr);
    assert.match(
      twice.stderr,
      /bench: SIGINT: (stopped at once; the checkpoint on disk is valid|stopped after \d+ of 30 items)/,
    );
    assert.ok(!existsSync(join(out, 'summary.json')));
    assert.ok(!existsSync(join(out, LOCK_FILE)));
    const res = bench([...args, '--out', out, '--resume']);
    assert.equal(res.code, 0, res.stderr);
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
  });

  test('bench visualize: SIGTERM → exit 143; --resume ends with the rows of an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-sig-vis-'));
    const args = ['visualize', '--method', 'rollout,transformer_attribution', '--quiet'];
    const out = join(dir, 'cut');
    const size = () => {
      try {
        return statSync(join(out, 'rollout', 'top', 'results.hdf5')).size;
      } catch {
        return 0;
      }
    };
    // 24 images of 32×32 float maps and images: the file passes ~20 kB after a few rows.
    const [ref, r] = await Promise.all([
      benchAsync([...args, '--out', join(dir, 'whole')]),
      signalAt([...args, '--out', out], () => size() / 60_000, 0.3, ['SIGTERM']),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.equal(r.code, 143, r.stderr);
    const { done, total } = stopLine(r, 'SIGTERM');
    assert.equal(total, 24);
    assert.ok(done < 24);
    assert.ok(!existsSync(join(out, 'visualize-top.json')));
    assert.ok(!existsSync(join(out, LOCK_FILE)));
    const res = bench([...args, '--out', out, '--resume']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, new RegExp(`${done} of 24 images already written`));
    for (const m of ['rollout', 'transformer_attribution'])
      await assertSameExplanationRows(
        join(dir, 'whole', m, 'top', 'results.hdf5'),
        join(out, m, 'top', 'results.hdf5'),
      );
  });

  test('bench perturb --batch-size 1: SIGTERM → exit 143; --resume ends byte-identical', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-sig-perturb-'));
    const vis = join(dir, 'vis');
    const v = bench(['visualize', '--method', 'rollout,transformer_attribution', '--quiet', '--out', vis]);
    assert.equal(v.code, 0, v.stderr);
    const args = ['perturb', '--vis-dir', vis, '--batch-size', '1', '--quiet'];
    const out = join(dir, 'cut');
    const done = () => {
      const s = json(join(out, 'state.json')) as { runs?: Record<string, { nextRow: number }> } | undefined;
      return Object.values(s?.runs ?? {}).reduce((n, r) => n + r.nextRow, 0) / (24 * 2 * 2);
    };
    const [ref, r] = await Promise.all([
      benchAsync([...args, '--out', join(dir, 'whole')]),
      signalAt([...args, '--out', out], done, 0.2, ['SIGTERM']),
    ]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.equal(r.code, 143, r.stderr);
    const stop = stopLine(r, 'SIGTERM');
    assert.equal(stop.total, 24 * 2 * 2);
    assert.equal(Math.round(done() * 96), stop.done, 'the checkpoint holds every finished row');
    assert.ok(!existsSync(join(out, 'summary.json')));
    const res = bench([...args, '--out', out, '--resume']);
    assert.equal(res.code, 0, res.stderr);
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
  });
});
