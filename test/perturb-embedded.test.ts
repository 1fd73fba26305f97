import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import type { PerturbSummary } from '../src/benchmarks/perturbation.js';
import { EMBEDDED } from '../src/embedded.js';
import { initBackend } from '../src/engine/backend.js';
import { ExplanationWriter } from '../src/formats/expl-hdf5.js';
import { loadVit } from '../src/models/load.js';
import type { CodeVersion } from '../src/util/code-version.js';
import { bench, benchAsync } from './helpers/cli.js';

// No paths at all: bench perturb explains the embedded image folder with the embedded model (bench visualize),
// then runs both perturbation tests on it.
test('bench perturb with no paths: embedded folder and model, meaningful AUCs', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-perturb-embedded-'));
  const r = bench(['perturb', '--out', 'pert', '--quiet'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /explaining the embedded image folder first/);
  assert.ok(
    existsSync(
      join(cwd, 'results/visualize/vit_shapes_tiny/embedded-default/transformer_attribution/top/results.hdf5'),
    ),
  );
  const s = JSON.parse(readFileSync(join(cwd, 'pert', 'summary.json'), 'utf8')) as PerturbSummary;
  // Every built-in: the paper's six and generic_attention.
  assert.equal(Object.keys(s.results).length, 7);
  for (const name of ['png', 'svg']) assert.ok(existsSync(join(cwd, 'pert', `perturbation.${name}`)));
  const ta = s.results.transformer_attribution!.top!;
  assert.equal(ta.negative!.images, 24);
  assert.equal(ta.negative!.accuracy[0], 1);
  // Removing the least relevant pixels first keeps the prediction; removing the most relevant first destroys it.
  assert.ok(ta.negative!.auc > 75, `negative AUC ${ta.negative!.auc}`);
  assert.ok(ta.positive!.auc < 40, `positive AUC ${ta.positive!.auc}`);
  // As in the paper, the method beats GradCAM on the positive test.
  assert.ok(ta.positive!.auc < s.results.gradcam!.top!.positive!.auc);
});

// The embedded explanations are a cache: reused by the same code only (issue 12), so that a change to the
// methods is never measured on the maps of the code before it. A changed code version is faked by editing
// the key the cache was stored with.
test('bench perturb with no paths reuses the embedded explanations of the same code version only', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-perturb-cache-'));
  const args = ['perturb', '--method', 'rollout', '--limit', '2', '--quiet'];
  const madeBy = join(cwd, 'results/visualize/vit_shapes_tiny/embedded-default/made-by.json');
  const first = bench([...args, '--out', 'p1'], { cwd });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /explaining the embedded image folder first/);
  const key = JSON.parse(readFileSync(madeBy, 'utf8')) as { code: CodeVersion; backend: string };
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal(key.code.version, pkg.version);
  assert.match(key.code.hash, /^[0-9a-f]{64}$/);

  const second = bench([...args, '--out', 'p2'], { cwd });
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /explaining the embedded image folder/);

  writeFileSync(madeBy, JSON.stringify({ ...key, code: { ...key.code, hash: '0'.repeat(64) } }));
  const third = bench([...args, '--out', 'p3'], { cwd });
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /embedded-default was made by other code, .*; making it again/);
  assert.match(third.stderr, /explaining the embedded image folder first/);
  assert.deepEqual(JSON.parse(readFileSync(madeBy, 'utf8')), key);
  // Same maps, so the same numbers as the first run.
  const auc = (out: string) =>
    (JSON.parse(readFileSync(join(cwd, out, 'summary.json'), 'utf8')) as PerturbSummary).results.rollout!.top;
  assert.deepEqual(auc('p3'), auc('p1'));
});

// A plug-in on the embedded default (issue 17): explained into its own cached folder beside the built-ins', whose
// key holds the plug-in file's SHA-256, so that an edited plug-in is explained again and the built-ins' maps are kept.
test('bench perturb with no paths and a plug-in: both reported; a changed plug-in file is explained again', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-perturb-plugin-'));
  const plugin = (sign: number) =>
    writeFileSync(
      join(cwd, 'probe.mjs'),
      `// CLS attention of the last block, mean over heads, times ${sign}.
export default {
  name: 'cls_probe',
  classFrom: null,
  needs: () => [],
  compute(ctx) {
    const { tf } = ctx;
    const A = ctx.attention(ctx.depth - 1);
    const [B, H, N] = A.shape;
    const row = tf.mean(tf.reshape(tf.slice(A, [0, 0, 0, 0], [B, H, 1, N]), [B, H, N]), 1);
    return tf.mul(tf.slice(row, [0, 1], [B, N - 1]), ${sign});
  },
};
`,
    );
  plugin(1);
  const args = ['perturb', '--method', './probe.mjs', '--method', 'transformer_attribution', '--limit', '6', '--quiet'];
  const vis = join(cwd, 'results/visualize/vit_shapes_tiny');
  const results = (out: string) =>
    (JSON.parse(readFileSync(join(cwd, out, 'summary.json'), 'utf8')) as PerturbSummary).results;
  const first = bench([...args, '--out', 'p1'], { cwd });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /explaining the embedded image folder first \(.*\/embedded-default\)/);
  assert.match(first.stderr, /explaining the embedded image folder first \(.*\/embedded-default-plugin-cls_probe\)/);
  assert.ok(existsSync(join(vis, 'embedded-default-plugin-cls_probe/cls_probe/top/results.hdf5')));
  // Both, in the order given, on the table and in the summary.
  assert.match(
    first.stdout,
    /\| cls_probe \| top \| [\d.]+ \| [\d.]+ \| 6 \|[^\n]*\n\| transformer_attribution \| top \|/,
  );
  assert.deepEqual(Object.keys(results('p1')), ['cls_probe', 'transformer_attribution']);
  const key = JSON.parse(readFileSync(join(vis, 'embedded-default-plugin-cls_probe/made-by.json'), 'utf8')) as {
    plugin: { file: string; sha256: string };
  };
  assert.equal(key.plugin.file, join(cwd, 'probe.mjs'));
  assert.equal(
    key.plugin.sha256,
    createHash('sha256')
      .update(readFileSync(join(cwd, 'probe.mjs')))
      .digest('hex'),
  );

  const again = bench([...args, '--out', 'p2'], { cwd });
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /explaining the embedded image folder/);
  assert.deepEqual(results('p2'), results('p1'));

  plugin(-1); // reversed maps
  const edited = bench([...args, '--out', 'p3'], { cwd });
  assert.equal(edited.code, 0, edited.stderr);
  assert.match(edited.stderr, /embedded-default-plugin-cls_probe was made by other code, .*; making it again/);
  assert.doesNotMatch(edited.stderr, /embedded-default was made by/);
  assert.doesNotMatch(edited.stderr, /explaining the embedded image folder first \(.*\/embedded-default\)/);
  const [before, after] = [results('p1'), results('p3')];
  assert.deepEqual(after.transformer_attribution, before.transformer_attribution);
  // Most relevant first is now least relevant first.
  assert.ok(
    after.cls_probe!.top!.positive!.auc > before.cls_probe!.top!.positive!.auc,
    `positive AUC ${before.cls_probe!.top!.positive!.auc} → ${after.cls_probe!.top!.positive!.auc}`,
  );

  // Bad --method values: one line naming them, before anything is explained.
  const bare = mkdtempSync(join(tmpdir(), 'bench-perturb-plugin-bad-'));
  for (const [method, re] of [
    ['grad_rollout', /^bench: error: unknown method 'grad_rollout': expected one of /],
    ['./missing.mjs', /^bench: error: plug-in method .*missing\.mjs: no such file$/],
  ] as const) {
    const r = bench(['perturb', '--method', method, '--quiet'], { cwd: bare });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('bench: note:'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, re);
    assert.ok(!existsSync(join(bare, 'results')), `${method}: wrote results/`);
  }
});

describe('bench perturb: bad input gets one clear line and loses nothing finished', () => {
  const oneError = (stderr: string) => {
    const errors = stderr.split('\n').filter((l) => l.startsWith('bench: error:'));
    assert.equal(errors.length, 1, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /);
    return errors[0]!;
  };

  test('--batch-size 0, --workers 0, --shard 2/2, and a file from a model with other classes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-bad-'));
    const vis = join(dir, 'vis');
    assert.equal(bench(['visualize', '--limit', '2', '--method', 'rollout', '--quiet', '--out', vis]).code, 0);
    const args = ['perturb', '--vis-dir', vis, '--quiet'];
    const cases: [string[], RegExp][] = [
      [['--batch-size', '0'], /--batch-size 0: expected a positive integer/],
      [['--batch', '2.5'], /--batch-size 2\.5: expected a positive integer/],
      [['--workers', '0'], /--workers 0: expected a positive integer/],
      [['--shard', '2/2'], /--shard 2\/2: expected K\/N with 0 ≤ K < N/],
    ];
    for (const [extra, re] of cases) {
      const r = bench([...args, ...extra, '--out', join(dir, 'out')]);
      assert.equal(r.code, 1, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(oneError(r.stderr), re);
      assert.ok(!existsSync(join(dir, 'out')), `${extra.join(' ')} wrote output`);
    }
    const same = join(vis, 'rollout', 'top', 'results.hdf5');
    const dup = bench(['perturb', '--vis', same, '--vis', same, '--quiet', '--out', join(dir, 'out')]);
    assert.equal(dup.code, 1, dup.stderr);
    assert.match(oneError(dup.stderr), /both hold rollout\/top: give one file per method and vis class/);
    assert.ok(!existsSync(join(dir, 'out')));
    // Explanations of a 10-class model beside ours: refused before anything is written, whichever row holds
    // the foreign label.
    const foreign = join(dir, 'foreign', 'gradcam', 'top', 'results.hdf5');
    mkdirSync(join(dir, 'foreign', 'gradcam', 'top'), { recursive: true });
    const w = await ExplanationWriter.create(foreign, { height: 224, width: 224 });
    const row = (target: number) => ({
      vis: new Float32Array(224 * 224),
      image: new Float32Array(3 * 224 * 224),
      target,
    });
    w.append([row(0), row(1), row(9)]);
    w.close();
    const r = bench([
      'perturb',
      '--vis',
      join(vis, 'rollout', 'top', 'results.hdf5'),
      '--vis',
      foreign,
      '--workers',
      '2',
      '--quiet',
      '--out',
      join(dir, 'out'),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneError(r.stderr), /results\.hdf5: holds label 9, but the model 'vit_shapes_tiny' has 4 classes/);
    assert.ok(!existsSync(join(dir, 'out')));
  });

  test('a vis file truncated mid-run: one error line naming it; the checkpoint keeps the finished rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-perturb-cut-'));
    const vis = join(dir, 'vis');
    assert.equal(bench(['visualize', '--method', 'rollout', '--quiet', '--out', vis]).code, 0);
    const file = join(vis, 'rollout', 'top', 'results.hdf5');
    const out = join(dir, 'out');
    const rowsDone = () => {
      try {
        const s = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as {
          runs: Record<string, { nextRow: number }>;
        };
        return Object.values(s.runs).reduce((n, x) => n + x.nextRow, 0);
      } catch {
        return 0;
      }
    };
    const run = benchAsync(['perturb', '--vis', file, '--batch-size', '1', '--workers', '2', '--quiet', '--out', out]);
    const deadline = Date.now() + 300_000;
    while (rowsDone() === 0 && Date.now() < deadline) await sleep(10);
    const seen = rowsDone();
    truncateSync(file, Math.floor(statSync(file).size * 0.4));
    const r = await run;
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneError(r.stderr), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*`));
    assert.ok(seen > 0 && rowsDone() >= seen, `rows done: ${seen} when cut, ${rowsDone()} after`);
    assert.ok(rowsDone() < 24 * 2, 'the run finished before the file was cut');
    assert.ok(!existsSync(join(out, 'summary.json')));
  });
});

// The engine computes an image's logits independently of the batch it is in, and model.logits() (the forward
// without its trace, which the perturbation test uses) gives the numbers of head(forward()): bit for bit.
test('classifier pass: logits() = head(forward()) and a batch of 4 = 4 single images, bit for bit', async () => {
  await initBackend('auto');
  const model = loadVit({ configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights });
  const c = model.config;
  const plane = c.in_chans * c.img_size * c.img_size;
  const images = new Float32Array(4 * plane).map((_, i) => Math.sin(i * 0.37) * 1.5);
  const run = (data: Float32Array, b: number, traced: boolean) =>
    tf.tidy(() => {
      const x = tf.tensor4d(data, [b, c.in_chans, c.img_size, c.img_size]);
      const logits = traced ? model.head(model.forward(x), c.final_norm_eps).logits : model.logits(x, c.final_norm_eps);
      return logits.dataSync() as Float32Array;
    });
  const batch = run(images, 4, false);
  assert.deepEqual(batch, run(images, 4, true));
  const singles = new Float32Array(batch.length);
  for (let i = 0; i < 4; i++) singles.set(run(images.slice(i * plane, (i + 1) * plane), 1, false), i * c.num_classes);
  assert.deepEqual(batch, singles);
  // No tensor is left behind by the untraced pass.
  const before = tf.memory().numTensors;
  run(images, 4, false);
  assert.equal(tf.memory().numTensors, before);
});
