import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LOCK_FILE } from '../src/benchmarks/run-lock.js';
import { BIN, bench } from './helpers/cli.js';
import { filesUnder, withoutTimings } from './helpers/run-outputs.js';

/**
 * Write errors (issue 16 item 3): a full disk, an I/O error or a read-only file system is one error line naming
 * the file, the cause and what to do, with no library noise; nothing finished is lost, and --resume (with space
 * again) ends equal to an uninterrupted run. Mounting a small tmpfs needs root, so the errors are injected
 * (BENCH_FAULT_WRITE=CODE:N, util/files.ts: the Nth write of the process fails with that errno code).
 */
function benchWithFault(args: string[], fault: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_FAULT_WRITE: fault },
    timeout: 600_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr without the launcher's note and the start-up lines every run prints (backend, forward, model, data, output). */
function afterStartup(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l && !/^(bench: note:|backend|forward:|model:|data:|resuming )/.test(l));
}

describe('write errors: one line, then --resume ends equal', () => {
  test('bench seg --save-img: ENOSPC on a panel, then EIO on per_image.csv; --resume with space ends equal', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-enospc-seg-'));
    const args = ['seg', '--limit', '8', '--method', 'rollout,transformer_attribution', '--save-img', '8', '--quiet'];
    const whole = join(dir, 'whole');
    assert.equal(bench([...args, '--out', whole]).code, 0);
    const out = join(dir, 'cut');
    // Writes of a fresh run: run.json, the CSV header, state.json, then per image: its panel, its rows, state.json.
    const first = benchWithFault([...args, '--out', out], 'ENOSPC:10'); // image 2's panel
    assert.equal(first.code, 1, first.stderr);
    assert.deepEqual(afterStartup(first.stderr), [
      `bench: error: ${join(out, 'images', '00002.png')}: cannot write: no space left on device (ENOSPC); free space and run again with --resume`,
    ]);
    assert.equal(
      JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).nextIndex,
      2,
      'the finished images are kept',
    );
    assert.ok(!existsSync(join(out, LOCK_FILE)));
    assert.ok(!filesUnder(out).some((f) => /\.tmp-\d+$/.test(f)), 'no temp file left behind');
    // Resumed: writes are its state.json, then per image: panel, rows, state; the 5th is image 3's rows.
    const second = benchWithFault([...args, '--out', out, '--resume'], 'EIO:5');
    assert.equal(second.code, 1, second.stderr);
    assert.deepEqual(afterStartup(second.stderr), [
      `bench: error: ${join(out, 'per_image.csv')}: cannot write: input/output error (EIO); check the disk (or move the folder), free space if it is full, and run again with --resume`,
    ]);
    const r = bench([...args, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(filesUnder(out), filesUnder(whole));
    for (const f of filesUnder(whole).filter((f) => !/^(summary\.json|summary\.md|state\.json)$/.test(f)))
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), f);
    assert.deepEqual(withoutTimings(join(out, 'summary.json')), withoutTimings(join(whole, 'summary.json')));
  });

  test('bench eraser: ENOSPC mid-run, then EROFS among the result files; --resume ends byte-identical', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-enospc-eraser-'));
    const args = ['eraser', '--limit', '10', '--method', 'rollout,transformer_attribution', '--quiet'];
    const whole = join(dir, 'whole');
    assert.equal(bench([...args, '--out', whole]).code, 0);
    const out = join(dir, 'cut');
    // run.json, the empty documents.jsonl, then one append per document: the 7th write is document 4's line.
    const first = benchWithFault([...args, '--out', out], 'ENOSPC:7');
    assert.equal(first.code, 1, first.stderr);
    assert.deepEqual(afterStartup(first.stderr), [
      `bench: error: ${join(out, 'documents.jsonl')}: cannot write: no space left on device (ENOSPC); free space and run again with --resume`,
    ]);
    assert.equal(readFileSync(join(out, 'documents.jsonl'), 'utf8').split('\n').length - 1, 4);
    // Resumed: documents.jsonl cut to its lines, 6 appends, then the result files: the 10th write is one of them.
    const second = benchWithFault([...args, '--out', out, '--resume'], 'EROFS:10');
    assert.equal(second.code, 1, second.stderr);
    const lines = afterStartup(second.stderr);
    assert.equal(lines.length, 1, second.stderr);
    assert.match(
      lines[0]!,
      /^bench: error: .*cut\/rollout\/\S+: cannot write: read-only file system \(EROFS\); make it writable \(or move the folder\) and run again with --resume$/,
    );
    const r = bench([...args, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    const all = filesUnder(whole);
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), f);
  });

  /** Mounts a tmpfs of `kb` KiB (root only); undefined where mounting is not allowed. */
  function smallDisk(kb: number): { dir: string; unmount: () => void } | undefined {
    const dir = mkdtempSync(join(tmpdir(), 'bench-tmpfs-'));
    mkdirSync(dir, { recursive: true });
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir], { encoding: 'utf8' });
    if (m.status !== 0) return undefined;
    return { dir, unmount: () => spawnSync('umount', [dir]) };
  }

  test('a real full disk (a 600 KiB tmpfs; skipped where mount is not allowed): seg --save-img and visualize print one line; seg moved to a larger disk resumes equal', (t) => {
    const disk = smallDisk(600);
    if (!disk) {
      t.skip('mount -t tmpfs is not allowed here (the injected faults above cover the same paths)');
      return;
    }
    try {
      const dir = mkdtempSync(join(tmpdir(), 'bench-fulldisk-'));
      const args = ['seg', '--limit', '8', '--method', 'rollout', '--save-img', '8', '--quiet'];
      assert.equal(bench([...args, '--out', join(dir, 'whole')]).code, 0);
      const full = join(disk.dir, 'seg');
      const r = bench([...args, '--out', full]);
      assert.equal(r.code, 1, r.stderr);
      const lines = afterStartup(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0]!,
        /^bench: error: .*seg\/\S+: cannot write: no space left on device \(ENOSPC\); free space and run again with --resume$/,
      );
      const moved = join(dir, 'moved');
      cpSync(full, moved, { recursive: true });
      const res = bench([...args, '--out', moved, '--resume']);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(
        readFileSync(join(moved, 'per_image.csv'), 'utf8'),
        readFileSync(join(dir, 'whole', 'per_image.csv'), 'utf8'),
      );
      assert.deepEqual(withoutTimings(join(moved, 'summary.json')), withoutTimings(join(dir, 'whole', 'summary.json')));
      for (const f of filesUnder(join(dir, 'whole')).filter((f) => f.endsWith('.png')))
        assert.ok(readFileSync(join(moved, f)).equals(readFileSync(join(dir, 'whole', f))), f);

      spawnSync('rm', ['-rf', full]);
      const v = bench([
        'visualize',
        '--method',
        'rollout,transformer_attribution',
        '--quiet',
        '--out',
        join(disk.dir, 'vis'),
      ]);
      assert.equal(v.code, 1, v.stderr);
      const vl = afterStartup(v.stderr);
      assert.equal(vl.length, 1, v.stderr);
      assert.match(
        vl[0]!,
        /^bench: error: .*results\.hdf5: cannot write: no space left on device \(ENOSPC\); free space and run again with --resume$/,
      );
    } finally {
      disk.unmount();
    }
  });
});
