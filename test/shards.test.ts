import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { resolveShard, shardIndices } from '../src/benchmarks/shards.js';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { BIN, bench } from './helpers/cli.js';
import { assertSameExplanationRows, filesUnder, withoutTimings } from './helpers/run-outputs.js';

/** Runs bench with extra environment variables (the scheduler's). */
function benchEnv(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('shard selection', () => {
  test('--shard K/N, or a Slurm array task, or a Kubernetes Indexed Job', () => {
    assert.deepEqual(resolveShard('1/4', {}).shard, { index: 1, count: 4 });
    assert.deepEqual(resolveShard(undefined, {}), {});
    assert.deepEqual(resolveShard('0/1', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' }), {});
    // --shard wins over the environment.
    assert.deepEqual(resolveShard('2/3', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' }).shard, {
      index: 2,
      count: 3,
    });
    assert.deepEqual(resolveShard(undefined, { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' }).shard, {
      index: 3,
      count: 4,
    });
    // --array=1-8:2 → ids 1, 3, 5, 7: id 5 is the third task.
    const stepped = {
      SLURM_ARRAY_TASK_ID: '5',
      SLURM_ARRAY_TASK_MIN: '1',
      SLURM_ARRAY_TASK_STEP: '2',
      SLURM_ARRAY_TASK_COUNT: '4',
    };
    assert.deepEqual(resolveShard(undefined, stepped).shard, { index: 2, count: 4 });
    assert.deepEqual(resolveShard(undefined, { JOB_COMPLETION_INDEX: '0', BENCH_SHARD_COUNT: '5' }).shard, {
      index: 0,
      count: 5,
    });
    assert.match(
      resolveShard(undefined, { JOB_COMPLETION_INDEX: '4', BENCH_SHARD_COUNT: '5' }).source!,
      /JOB_COMPLETION_INDEX=4/,
    );
  });

  test('inconsistent shard settings are refused with one clear line', () => {
    const bad: [string | undefined, Record<string, string>, RegExp][] = [
      ['3/3', {}, /--shard 3\/3: expected K\/N with 0 ≤ K < N/],
      ['a/b', {}, /expected K\/N/],
      [undefined, { SLURM_ARRAY_TASK_ID: '2' }, /SLURM_ARRAY_TASK_COUNT is not/],
      [undefined, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4' }, /not one of 4 evenly spaced tasks/],
      [
        undefined,
        { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '4' },
        /SLURM_ARRAY_TASK_ID=x: expected a non-negative integer/,
      ],
      [undefined, { JOB_COMPLETION_INDEX: '1' }, /set BENCH_SHARD_COUNT/],
      [undefined, { JOB_COMPLETION_INDEX: '5', BENCH_SHARD_COUNT: '5' }, /not below BENCH_SHARD_COUNT=5/],
    ];
    for (const [value, env, re] of bad) assert.throws(() => resolveShard(value, env), re);
    assert.deepEqual(shardIndices(10, { index: 1, count: 4 }), [1, 5, 9]);
    assert.deepEqual(shardIndices(3), [0, 1, 2]);
  });
});

const SEG = ['seg', '--limit', '7', '--method', 'rollout,transformer_attribution', '--save-img', '3', '--quiet'];

describe('bench seg shards', () => {
  test('shards from --shard and from SLURM_* merge into the files and numbers of one run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-seg-shards-'));
    assert.equal(bench([...SEG, '--out', join(dir, 'whole')]).code, 0);
    const s0 = bench([...SEG, '--shard', '0/2', '--out', join(dir, 's0')]);
    assert.equal(s0.code, 0, s0.stderr);
    assert.match(s0.stdout, /4 images \(shard 0\/2/);
    const s1 = benchEnv([...SEG, '--out', join(dir, 's1')], { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2' });
    assert.equal(s1.code, 0, s1.stderr);
    assert.match(s1.stderr, /shard 1\/2 \(from SLURM_ARRAY_TASK_ID=1 of SLURM_ARRAY_TASK_COUNT=2\)/);
    const m = bench(['merge', join(dir, 'merged'), join(dir, 's1'), join(dir, 's0')]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /7 images from 2 shards/);
    assert.deepEqual(filesUnder(join(dir, 'merged')), filesUnder(join(dir, 'whole')));
    for (const f of ['per_image.csv', 'run.json', 'images/00000.png', 'images/00001.png', 'images/00002.png'])
      assert.ok(readFileSync(join(dir, 'merged', f)).equals(readFileSync(join(dir, 'whole', f))), f);
    assert.deepEqual(
      withoutTimings(join(dir, 'merged', 'summary.json')),
      withoutTimings(join(dir, 'whole', 'summary.json')),
    );
    // A shard's own summary says it is partial, so bench regress never compares it.
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 's0', 'summary.json'), 'utf8')).shard, { index: 0, count: 2 });
  });
});

describe('bench eraser shards', () => {
  test('three Indexed-Job shards merge into byte-identical files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-eraser-shards-'));
    const args = ['eraser', '--limit', '8', '--method', 'rollout,transformer_attribution', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    for (const k of ['0', '1', '2']) {
      const r = benchEnv([...args, '--out', join(dir, `s${k}`)], { JOB_COMPLETION_INDEX: k, BENCH_SHARD_COUNT: '3' });
      assert.equal(r.code, 0, r.stderr);
    }
    const m = bench(['merge', join(dir, 'merged'), join(dir, 's2'), join(dir, 's0'), join(dir, 's1')]);
    assert.equal(m.code, 0, m.stderr);
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(join(dir, 'merged')), all);
    assert.ok(all.includes('transformer_attribution/identifier_results_5.json') && all.includes('documents.jsonl'));
    for (const f of all) assert.ok(readFileSync(join(dir, 'merged', f)).equals(readFileSync(join(dir, 'whole', f))), f);

    // Merging anything but all N finished shards of one run is refused.
    const refuse = (dirs: string[], re: RegExp) => {
      const r = bench(['merge', join(dir, 'bad'), ...dirs.map((d) => join(dir, d))]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    };
    refuse(['s0', 's1'], /shard 2\/3 missing/);
    refuse(['s0', 's1', 's1', 's2'], /are both shard 1\/3/);
    refuse(['whole'], /not a shard \(its run\.json has no shard\)/);
    rmSync(join(dir, 's2', 'summary.json'));
    refuse(['s0', 's1', 's2'], /shard 2\/3 is unfinished \(no summary\.json\); finish it with --resume first/);
  });
});

describe('bench visualize shards', () => {
  test('shards merge into the rows and summary of one run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-vis-shards-'));
    const args = ['visualize', '--limit', '5', '--method', 'rollout,lrp', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
    for (const k of ['0', '1'])
      assert.equal(bench([...args, '--shard', `${k}/2`, '--out', join(dir, `s${k}`)]).code, 0);
    const other = bench([
      'seg',
      '--limit',
      '2',
      '--method',
      'rollout',
      '--shard',
      '1/2',
      '--quiet',
      '--out',
      join(dir, 'seg1'),
    ]);
    assert.equal(other.code, 0);
    const mixed = bench(['merge', join(dir, 'bad'), join(dir, 's0'), join(dir, 'seg1')]);
    assert.match(mixed.stderr, /a shard of a different run/);
    const m = bench(['merge', join(dir, 'merged'), join(dir, 's0'), join(dir, 's1')]);
    assert.equal(m.code, 0, m.stderr);
    for (const method of ['rollout', 'lrp']) {
      const merged = join(dir, 'merged', method, 'top', 'results.hdf5');
      await assertSameExplanationRows(join(dir, 'whole', method, 'top', 'results.hdf5'), merged);
      const r = await readExplanations(merged);
      assert.deepEqual(r.indices, [0, 1, 2, 3, 4]);
      r.close();
    }
    const summary = withoutTimings(join(dir, 'merged', 'visualize-top.json')) as Record<string, unknown>;
    const whole = withoutTimings(join(dir, 'whole', 'visualize-top.json')) as Record<string, unknown>;
    assert.deepEqual({ ...summary, files: undefined }, { ...whole, files: undefined });
    assert.ok(readFileSync(join(dir, 'merged', 'run.json')).equals(readFileSync(join(dir, 'whole', 'run.json'))));
  });
});

describe('bench perturb shards', () => {
  test('shards from --shard, SLURM_* and an Indexed Job merge into the files and --json of one run; bad sets are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-shards-'));
    const vis = join(dir, 'vis');
    const v = bench(['visualize', '--limit', '8', '--method', 'rollout,gradcam', '--quiet', '--out', vis]);
    assert.equal(v.code, 0, v.stderr);
    const args = ['perturb', '--vis-dir', vis, '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'whole'), '--json', join(dir, 'whole.json')]).code, 0);
    const s0 = bench([...args, '--shard', '0/3', '--out', join(dir, 's0')]);
    assert.equal(s0.code, 0, s0.stderr);
    const s1 = benchEnv([...args, '--out', join(dir, 's1')], { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '3' });
    assert.equal(s1.code, 0, s1.stderr);
    assert.match(s1.stderr, /shard 1\/3 \(from SLURM_ARRAY_TASK_ID=1 of SLURM_ARRAY_TASK_COUNT=3\)/);
    const s2 = benchEnv([...args, '--workers', '2', '--out', join(dir, 's2')], {
      JOB_COMPLETION_INDEX: '2',
      BENCH_SHARD_COUNT: '3',
    });
    assert.equal(s2.code, 0, s2.stderr);
    // Rows 0, 3, 6 / 1, 4, 7 / 2, 5 of each file.
    const images = (d: string) =>
      JSON.parse(readFileSync(join(dir, d, 'summary.json'), 'utf8')).results.rollout.top.negative.images;
    assert.deepEqual(['s0', 's1', 's2'].map(images), [3, 3, 2]);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 's2', 'summary.json'), 'utf8')).shard, { index: 2, count: 3 });

    const m = bench([
      'merge',
      join(dir, 'merged'),
      join(dir, 's2'),
      join(dir, 's0'),
      join(dir, 's1'),
      '--json',
      join(dir, 'merged.json'),
    ]);
    assert.equal(m.code, 0, m.stderr);
    const all = filesUnder(join(dir, 'whole'));
    assert.deepEqual(filesUnder(join(dir, 'merged')), all);
    assert.ok(all.includes('steps.csv') && all.includes('perturbation.png') && all.includes('perturbation.svg'));
    for (const f of all) assert.ok(readFileSync(join(dir, 'merged', f)).equals(readFileSync(join(dir, 'whole', f))), f);
    assert.ok(readFileSync(join(dir, 'merged.json')).equals(readFileSync(join(dir, 'whole.json'))));

    const refuse = (dirs: string[], re: RegExp) => {
      const r = bench(['merge', join(dir, 'bad'), ...dirs.map((d) => join(dir, d))]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('bench: error:')).length,
        1,
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    };
    refuse(['s0', 's2'], /shard 1\/3 missing/);
    refuse(['s0', 's1', 's1', 's2'], /are both shard 1\/3/);
    refuse(['whole'], /not a shard \(its run\.json has no shard\)/);
    // A shard of another run: the same rows, the other tie rule.
    assert.equal(bench([...args, '--ties', 'stable', '--shard', '1/3', '--out', join(dir, 'stable1')]).code, 0);
    refuse(['s0', 'stable1', 's2'], /a shard of a different run/);
    rmSync(join(dir, 's2', 'summary.json'));
    refuse(['s0', 's1', 's2'], /shard 2\/3 is unfinished \(no summary\.json\); finish it with --resume first/);
    // More shards than rows: refused before anything is written.
    const over = bench([...args, '--limit', '2', '--shard', '2/3', '--out', join(dir, 'over')]);
    assert.equal(over.code, 1);
    assert.match(
      over.stderr,
      /bench: error: shard 2\/3 has no rows of .*results\.hdf5 \(2 rows\): use at most 2 shards/,
    );
  });
});
