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
 * Starts `bench args`, waits until `started()` says work has been checkpointed, waits a random 0–`jitterMs`
 * more, and kills it with SIGKILL. Returns whether it was still running when killed (a run that already
 * finished proves nothing, and the caller retries).
 */
async function killMidRun(args: string[], started: () => boolean, jitterMs: number): Promise<boolean> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
  let exited = false;
  const done = new Promise<void>((res) =>
    child.on('exit', () => {
      exited = true;
      res();
    }),
  );
  const deadline = Date.now() + 120_000;
  while (!exited && !started() && Date.now() < deadline) await sleep(20);
  if (!exited) await sleep(Math.floor(rng.next() * jitterMs));
  const killedInTime = !exited;
  if (!exited) child.kill('SIGKILL');
  await done;
  return killedInTime;
}

/** Kills a run twice at random moments, then lets `--resume` finish it. */
async function killTwiceThenResume(args: string[], out: string, progress: () => number, finalFile: string) {
  let kills = 0;
  for (let attempt = 0; kills < 2 && attempt < 6; attempt++) {
    const before = progress();
    const killed = await killMidRun(
      kills === 0 ? args : [...args, '--resume'],
      () => progress() > before,
      attempt < 3 ? 600 : 50,
    );
    if (killed && !existsSync(join(out, finalFile))) kills++;
  }
  assert.equal(kills, 2, 'the run was never killed mid-way (it finished too fast)');
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

describe('SIGKILL at a random moment, then --resume', () => {
  test('bench seg --workers 2: per_image.csv, saved panels and summary equal an uninterrupted one-worker run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-seg-'));
    const args = ['seg', '--limit', '20', '--method', 'all', '--save-img', '20', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    await killTwiceThenResume(
      [...args, '--out', out],
      out,
      () => jsonField(join(out, 'state.json'), 'nextIndex'),
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
    await killTwiceThenResume([...args, '--out', out], out, () => lines(join(out, 'documents.jsonl')), 'summary.json');
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, 'whole', f))), f);
  });

  test('bench visualize: every file holds the rows of an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-kill-vis-'));
    const args = ['visualize', '--method', 'all', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    const out = join(dir, 'cut');
    // Progress: the HDF5 files grow as rows are appended.
    const size = () => {
      try {
        return statSync(join(out, 'rollout', 'top', 'results.hdf5')).size;
      } catch {
        return 0;
      }
    };
    await killTwiceThenResume([...args, '--out', out], out, size, 'visualize-top.json');
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
});
