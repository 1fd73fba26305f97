import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { bench } from './helpers/cli.js';
import { assertSameExplanationRows, withoutTimings } from './helpers/run-outputs.js';

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
});
