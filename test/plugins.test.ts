import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { EMBEDDED } from '../src/embedded.js';
import { initBackend } from '../src/engine/backend.js';
import { explain } from '../src/methods/explain.js';
import { vitPass } from '../src/methods/model-pass.js';
import { PassContext } from '../src/methods/pass.js';
import { loadMethods, PluginError } from '../src/methods/plugins.js';
import { loadVit } from '../src/models/load.js';
import type { VisionTransformer } from '../src/models/vit.js';
import { benchAsync } from './helpers/cli.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';

/**
 * Plug-in methods (issue 17): the two examples of examples/methods through explain, seg (also with --workers 2),
 * visualize + perturb and eraser on the embedded defaults, the gradient at the embeddings they rely on, and one
 * clear error line for each bad plug-in (test/fixtures/plugins/).
 */

const IXG = resolve('examples/methods/input-x-gradient.ts');
const ATT = resolve('examples/methods/cls-attention-max.ts');
const BAD = (f: string) => resolve('test/fixtures/plugins', f);
const ROOT = mkdtempSync(join(tmpdir(), 'bench-plugins-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

let model: VisionTransformer;
let input: tf.Tensor4D;
before(async () => {
  await initBackend('auto');
  model = loadVit({ configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights });
  const c = model.config;
  // A fixed pseudo-random normalised image (values in [−1, 1)).
  const n = c.in_chans * c.img_size * c.img_size;
  input = tf.tensor4d(
    Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 500 - 1),
    [1, c.in_chans, c.img_size, c.img_size],
  );
});

describe('loading', () => {
  test('built-ins, groups and plug-in files mix; duplicates dropped; the plug-in keeps its file', async () => {
    const { methods, pluginFiles } = await loadMethods([
      `${IXG},rollout`,
      'paper',
      IXG,
      `./${'examples/methods/cls-attention-max.ts'}`,
    ]);
    assert.deepEqual(
      methods.map((m) => m.name),
      [
        'input_x_gradient',
        'rollout',
        'raw_attention',
        'gradcam',
        'lrp',
        'partial_lrp',
        'transformer_attribution',
        'cls_attention_max',
      ],
    );
    assert.deepEqual(pluginFiles, [IXG, ATT]);
  });

  test('two plug-ins of one name: one line naming both files', async () => {
    const twin = join(ROOT, 'twin.mjs');
    writeFileSync(
      twin,
      "export default { name: 'input_x_gradient', classFrom: null, needs: () => [], compute: () => 0 };\n",
    );
    await assert.rejects(
      loadMethods([IXG, twin]),
      new PluginError(twin, `its name 'input_x_gradient' is also the name of ${IXG}`),
    );
  });

  const loadErrors: [string, string, RegExp][] = [
    ['a missing file', BAD('missing.ts'), /no such file/],
    ['no default export', BAD('no-default.mjs'), /no default export/],
    ['a wrong shape', BAD('wrong-shape.mjs'), /not an explanation method: 'compute' must be a function/],
    ['a built-in name', BAD('clash.mjs'), /its name 'rollout' clashes with the built-in method rollout/],
  ];
  for (const [what, file, says] of loadErrors) {
    test(`${what}: one line naming the file`, async () => {
      await assert.rejects(loadMethods([file]), (e: Error) => {
        assert.ok(e instanceof PluginError);
        assert.ok(e.message.startsWith(`plug-in method ${file}: `), e.message);
        assert.match(e.message, says);
        assert.ok(!e.message.includes('\n'), e.message);
        return true;
      });
    });
  }
});

describe('running', () => {
  const runErrors: [string, string, RegExp][] = [
    [
      'an output of the wrong size',
      BAD('wrong-size.mjs'),
      /compute\(\) returned 1 values for 1 sample\(s\); expected 196/,
    ],
    ['NaN in the output', BAD('nan.mjs'), /compute\(\) returned NaN \(sample 0, value 0 of 196\)/],
    ['a need beyond the model', BAD('bad-need.mjs'), /needs\(\) returned .*"downTo":99.*block in 0 … 2/],
    ['compute() throwing (a .ts file)', BAD('throws.ts'), /compute\(\) failed: not implemented yet$/],
  ];
  for (const [what, file, says] of runErrors) {
    test(`${what}: one line naming the file`, async () => {
      const { methods } = await loadMethods([file, 'rollout']);
      await assert.rejects(explain(model, input, methods), (e: Error) => {
        assert.ok(e.message.startsWith(`plug-in method ${file}: `), e.message);
        assert.match(e.message, says);
        return true;
      });
    });
  }

  test('the gradient at the embeddings equals TF.js autodiff through the model (pixels → patches)', async () => {
    // ∂y/∂patches = (∂y/∂x)[patch tokens] · W_patch, since the patches do not overlap; y = the top class's logit of
    // the classifier tail (eps final_norm_eps). Measured max|Δ| = 5.8e-7 of max|ref| (wasm; BENCH_PRINT_ERRORS=1
    // prints it); bound: that plus a margin of 4.4e-6 for other backends' float32 summation orders.
    const eps = model.config.final_norm_eps;
    const { methods } = await loadMethods([IXG]);
    const [ours, ref] = tf.tidy(() => {
      const ctx = new PassContext(vitPass(model, input), 'top', methods, {});
      const k = ctx.classes.classifier[0]!;
      const g = ctx.inputGradient('classifier'); // [1, N, D]
      const [, N, D] = g.shape;
      const gPatches = model.weights.patchEmbed.backward(tf.reshape(tf.slice(g, [0, 1, 0], [1, N - 1, D]), [N - 1, D]));
      const seed = tf.oneHot([k], model.config.num_classes).toFloat();
      const gIn = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.mul(model.head(model.forward(x as tf.Tensor4D), eps).logits, seed)),
      )(input);
      return [gPatches, model.forward(gIn as tf.Tensor4D).patches];
    });
    const a = ours.dataSync();
    const b = ref.dataSync();
    if (process.env.BENCH_PRINT_ERRORS) console.log(`input gradient: ${maxAbsDiff(a, b) / maxAbs(b)} of max`);
    assert.ok(maxAbsDiff(a, b) <= (5.8e-7 + 4.4e-6) * maxAbs(b), `max|Δ| ${maxAbsDiff(a, b)} of max ${maxAbs(b)}`);
    tf.dispose([ours, ref]);
  });
});

describe('the examples through the commands (embedded defaults)', () => {
  test('bench seg with a plug-in and a built-in, 1 and 2 workers, reports both, identical', async () => {
    const run = (out: string, workers: string) =>
      benchAsync([
        'seg',
        '--method',
        './examples/methods/input-x-gradient.ts',
        '--method',
        'transformer_attribution',
        '--limit',
        '8',
        '--workers',
        workers,
        '--out',
        out,
        '--quiet',
      ]);
    const [one, two] = await Promise.all([run(join(ROOT, 'seg1'), '1'), run(join(ROOT, 'seg2'), '2')]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(two.code, 0, two.stderr);
    const s1 = JSON.parse(readFileSync(join(ROOT, 'seg1', 'summary.json'), 'utf8'));
    const s2 = JSON.parse(readFileSync(join(ROOT, 'seg2', 'summary.json'), 'utf8'));
    assert.deepEqual(Object.keys(s1.methods), ['input_x_gradient', 'transformer_attribution']);
    for (const m of Object.keys(s1.methods)) {
      for (const k of ['pixelAccuracy', 'mIoU', 'mAP']) {
        assert.ok(Number.isFinite(s1.methods[m][k]) && s1.methods[m][k] > 0, `${m} ${k}`);
        assert.equal(s2.methods[m][k], s1.methods[m][k], `${m} ${k}: --workers 2 differs`);
      }
    }
    assert.match(one.stdout, /\| input_x_gradient \|/);
  });

  test('bench seg --shard with a plug-in: the merged shards equal the whole run', async () => {
    const args = ['seg', '--method', IXG, '--method', 'rollout', '--limit', '8', '--quiet'];
    const shards = await Promise.all(
      [0, 1].map((k) => benchAsync([...args, '--shard', `${k}/2`, '--out', join(ROOT, `shard${k}`)])),
    );
    for (const r of shards) assert.equal(r.code, 0, r.stderr);
    const whole = await benchAsync([...args, '--out', join(ROOT, 'whole')]);
    assert.equal(whole.code, 0, whole.stderr);
    const m = await benchAsync(['merge', join(ROOT, 'merged'), join(ROOT, 'shard0'), join(ROOT, 'shard1')]);
    assert.equal(m.code, 0, m.stderr);
    const read = (d: string) => JSON.parse(readFileSync(join(ROOT, d, 'summary.json'), 'utf8')).methods;
    const [merged, full] = [read('merged'), read('whole')];
    assert.deepEqual(Object.keys(merged), ['input_x_gradient', 'rollout']);
    for (const name of Object.keys(full))
      for (const k of ['pixelAccuracy', 'mIoU', 'mAP']) assert.equal(merged[name][k], full[name][k], `${name} ${k}`);
  });

  test('bench visualize then perturb with the plug-in', async () => {
    const vis = join(ROOT, 'vis');
    const v = await benchAsync(['visualize', '--method', `${IXG},${ATT}`, '--limit', '6', '--out', vis, '--quiet']);
    assert.equal(v.code, 0, v.stderr);
    const p = await benchAsync(['perturb', '--vis-dir', vis, '--method', IXG, '--out', join(ROOT, 'pert'), '--quiet']);
    assert.equal(p.code, 0, p.stderr);
    const s = JSON.parse(readFileSync(join(ROOT, 'pert', 'summary.json'), 'utf8'));
    assert.deepEqual(Object.keys(s.results), ['input_x_gradient']);
    const auc = s.results.input_x_gradient.top.negative.auc;
    assert.ok(Number.isFinite(auc) && auc > 0 && auc <= 100, `AUC ${auc}`);
  });

  test('bench eraser with both examples and generic_attention', async () => {
    const out = join(ROOT, 'eraser');
    const r = await benchAsync([
      'eraser',
      '--method',
      IXG,
      '--method',
      ATT,
      '--method',
      'generic_attention',
      '--limit',
      '6',
      '--out',
      out,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    assert.deepEqual(Object.keys(s.methods), ['input_x_gradient', 'cls_attention_max', 'generic_attention']);
    for (const m of Object.values(s.methods) as { tokenF1: Record<string, number> }[]) {
      const f1 = Object.values(m.tokenF1);
      assert.equal(f1.length, 16); // k = 5 … 80
      assert.ok(
        f1.every((v) => Number.isFinite(v) && v > 0 && v <= 1),
        JSON.stringify(f1),
      );
    }
  });

  test('a bad plug-in on the command line: exactly one error line, no stack', async () => {
    const r = await benchAsync(['explain', '--method', BAD('clash.mjs')]);
    assert.equal(r.code, 1);
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('bench: note:'));
    assert.deepEqual(lines, [
      `bench: error: plug-in method ${BAD('clash.mjs')}: its name 'rollout' clashes with the built-in method rollout: choose another name`,
    ]);
  });
});
