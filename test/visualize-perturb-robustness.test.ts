import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runVisualize, visFile } from '../src/benchmarks/visualize.js';
import { openImageFolder } from '../src/datasets/imagenet-folder.js';
import { EMBEDDED } from '../src/embedded.js';
import { initBackend } from '../src/engine/backend.js';
import { ExplanationWriter, readExplanations } from '../src/formats/expl-hdf5.js';
import { resolveMethods } from '../src/methods/registry.js';
import { loadVit } from '../src/models/load.js';
import { bench } from './helpers/cli.js';

test('bench visualize: an interrupted run resumes and its files equal an uninterrupted run', async () => {
  await initBackend('auto');
  const model = loadVit({ configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights });
  const folder = openImageFolder(EMBEDDED.imageFolder);
  const dir = mkdtempSync(join(tmpdir(), 'bench-vis-resume-'));
  const base = {
    model,
    folder,
    methods: resolveMethods(['rollout', 'transformer_attribution']),
    visClass: 'top' as const,
    startLayer: 1,
    identity: { command: 'visualize', test: 1 },
    limit: 8,
    quiet: true,
    log: () => {},
  };
  await runVisualize({ ...base, outDir: join(dir, 'full') });
  const out = join(dir, 'cut');
  await assert.rejects(
    runVisualize({
      ...base,
      outDir: out,
      onImageDone: (i) => {
        if (i === 4) throw new Error('simulated interruption');
      },
    }),
    /simulated interruption/,
  );
  await assert.rejects(runVisualize({ ...base, outDir: out }), /pass --resume/);
  await runVisualize({ ...base, outDir: out, resume: true });
  for (const m of ['rollout', 'transformer_attribution']) {
    const a = await readExplanations(visFile(join(dir, 'full'), m, 'top'));
    const b = await readExplanations(visFile(out, m, 'top'));
    assert.equal(b.rows, 8);
    assert.deepEqual(b.indices, a.indices);
    const ra = a.readRows(0, 8);
    const rb = b.readRows(0, 8);
    assert.deepEqual(rb.vis, ra.vis);
    assert.deepEqual(rb.image, ra.image);
    assert.deepEqual(rb.target, ra.target);
    a.close();
    b.close();
  }
});

test('bench perturb: a file for another model size or method is refused with a clear line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-bad-'));
  const small = join(dir, 'small', 'rollout', 'top', 'results.hdf5');
  mkdirSync(join(dir, 'small', 'rollout', 'top'), { recursive: true });
  const w = await ExplanationWriter.create(small, {
    height: 112,
    width: 112,
    attrs: { method: 'rollout', vis_class: 'top' },
  });
  w.append([{ vis: new Float32Array(112 * 112), image: new Float32Array(3 * 112 * 112), target: 0 }]);
  w.close();
  const r = bench(['perturb', '--vis', small, '--out', join(dir, 'o1'), '--quiet']);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /bench: error: .*results\.hdf5: maps are 112×112, but the model 'vit_shapes_tiny' takes 224×224 images/,
  );
  const r2 = bench([
    'perturb',
    '--vis-dir',
    join(dir, 'small'),
    '--method',
    'gradcam',
    '--out',
    join(dir, 'o2'),
    '--quiet',
  ]);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /no visualisation file of method gradcam/);
  const notH5 = join(dir, 'x.hdf5');
  writeFileSync(notH5, 'not an HDF5 file');
  const r3 = bench(['perturb', '--vis', notH5, '--out', join(dir, 'o3'), '--quiet']);
  assert.notEqual(r3.code, 0);
  assert.match(r3.stderr, /x\.hdf5: /);
  for (const x of [r, r2, r3]) assert.doesNotMatch(x.stderr, /\n\s+at |HDF5-DIAG/);
  const r4 = bench(['visualize', '--data', join(dir, 'small'), '--out', join(dir, 'o4'), '--quiet']);
  assert.notEqual(r4.code, 0);
  assert.match(r4.stderr, /bench: error: /);
});
