import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { bench } from './helpers/cli.js';
import { assertSameExplanationRows, filesUnder, withoutTimings } from './helpers/run-outputs.js';

describe('--workers', () => {
  test('bench seg --workers 2 writes the files of --workers 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-seg-workers-'));
    const args = ['seg', '--limit', '9', '--method', 'all', '--save-img', '2', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'w1')]).code, 0);
    const r = bench([...args, '--workers', '2', '--out', join(dir, 'w2')]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['per_image.csv', 'images/00000.png', 'images/00001.png'])
      assert.ok(readFileSync(join(dir, 'w2', f)).equals(readFileSync(join(dir, 'w1', f))), f);
    assert.deepEqual(withoutTimings(join(dir, 'w2', 'summary.json')), withoutTimings(join(dir, 'w1', 'summary.json')));
  });

  test('bench visualize --workers 3 writes the rows of --workers 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-vis-workers-'));
    const args = ['visualize', '--limit', '7', '--method', 'gradcam,lrp,transformer_attribution', '--quiet'];
    assert.equal(bench([...args, '--out', join(dir, 'w1')]).code, 0);
    const r = bench([...args, '--workers', '3', '--out', join(dir, 'w3')]);
    assert.equal(r.code, 0, r.stderr);
    for (const m of ['gradcam', 'lrp', 'transformer_attribution']) {
      const w3 = join(dir, 'w3', m, 'top', 'results.hdf5');
      await assertSameExplanationRows(join(dir, 'w1', m, 'top', 'results.hdf5'), w3);
      const r = await readExplanations(w3);
      assert.deepEqual(r.indices, [0, 1, 2, 3, 4, 5, 6]);
      r.close();
    }
  });

  test('bench perturb --workers 2 and --batch-size 1 or 4 write the files of one worker at batch 16, byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-workers-'));
    const vis = join(dir, 'vis');
    const v = bench([
      'visualize',
      '--limit',
      '9',
      '--method',
      'rollout,transformer_attribution',
      '--quiet',
      '--out',
      vis,
    ]);
    assert.equal(v.code, 0, v.stderr);
    const args = ['perturb', '--vis-dir', vis, '--quiet'];
    const runs: [string, string[]][] = [
      ['w1', []],
      ['w2', ['--workers', '2']],
      ['b1', ['--batch-size', '1']],
      ['b4w2', ['--batch-size', '4', '--workers', '2']],
    ];
    for (const [name, extra] of runs) {
      const r = bench([...args, ...extra, '--out', join(dir, name), '--json', join(dir, `${name}.json`)]);
      assert.equal(r.code, 0, r.stderr);
    }
    const all = filesUnder(join(dir, 'w1'));
    assert.deepEqual(all, [
      'perturbation.png',
      'perturbation.svg',
      'run.json',
      'state.json',
      'steps.csv',
      'summary.json',
      'summary.md',
    ]);
    for (const [name] of runs.slice(1)) {
      assert.deepEqual(filesUnder(join(dir, name)), all, name);
      for (const f of all)
        assert.ok(readFileSync(join(dir, name, f)).equals(readFileSync(join(dir, 'w1', f))), `${name}/${f}`);
      assert.ok(readFileSync(join(dir, `${name}.json`)).equals(readFileSync(join(dir, 'w1.json'))), `${name}.json`);
    }
    // The counts are of every image: 9 per file and setting.
    const steps = readFileSync(join(dir, 'w1', 'steps.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(steps.length, 1 + 2 * 2 * 10);
    assert.ok(steps.slice(1).every((l) => l.endsWith(',9')));
  });
});
