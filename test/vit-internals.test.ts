import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { explain } from '../src/methods/explain.js';
import { vitPass } from '../src/methods/model-pass.js';
import { PassContext } from '../src/methods/pass.js';
import { findMethod, METHODS, resolveMethods } from '../src/methods/registry.js';
import {
  type GoldenCase,
  goldenArray,
  inputTensor,
  loadGoldenVit,
  maxAbs,
  maxAbsDiff,
  pearson,
  readGoldenTensors,
  readJson,
} from './helpers/golden.js';

// Intermediates of the official run (debug.* in the golden case files): attention, attention gradients,
// attention relevance. They come from the float64 run rounded to float32.
describe('ViT intermediates against the reference (S1)', async () => {
  const model = await loadGoldenVit('S1');
  const ta = findMethod('transformer_attribution');
  const gc = findMethod('gradcam');
  const pl = findMethod('partial_lrp');
  for (const caseName of ['random', 'smooth']) {
    const meta = readJson<GoldenCase>('vit', 'S1', `case-${caseName}.json`);
    const g = readGoldenTensors('vit', 'S1', `case-${caseName}.safetensors`);
    const input = inputTensor(g);

    test(`${caseName}: attention, gradients and relevance of every block`, () => {
      tf.tidy(() => {
        const ctx = new PassContext(vitPass(model, input), 'top', [ta, gc, pl], { startLayer: 0 });
        for (let l = 0; l < model.depth; l++) {
          const attn = ctx.attention(l).dataSync();
          const ref = goldenArray(g, `debug.attn.block${l}`);
          assert.ok(maxAbsDiff(attn, ref) <= 1e-4 * maxAbs(ref), `attention of block ${l}`);
          const grad = ctx.gradient('lrp', l).dataSync();
          const refGrad = goldenArray(g, `debug.transformer_attribution.top.attn_grad.block${l}`);
          assert.ok(maxAbsDiff(grad, refGrad) <= 1e-4 * maxAbs(refGrad), `∂logit/∂A of block ${l}`);
          // attn_cam is as ill-conditioned as the LRP maps: held to correlation, and to the sum.
          const cam = ctx.attnCam('ours', l).dataSync();
          const refCam = goldenArray(g, `debug.transformer_attribution.top.attn_cam.block${l}`);
          assert.ok(pearson(cam, refCam) >= 0.99, `attn_cam of block ${l}: Pearson ${pearson(cam, refCam)}`);
        }
        // GradCAM's inputs: CLS row of the last block's attention and its gradient (ViT_new, eps 1e-6).
        const last = model.depth - 1;
        const row0 = (t: tf.Tensor4D) => tf.slice(t, [0, 0, 0, 0], [1, -1, 1, -1]).dataSync();
        const gRow = goldenArray(g, 'debug.attn_gradcam.top.grad_row0');
        assert.ok(
          maxAbsDiff(row0(ctx.gradient('classifier', last)), gRow) <= 1e-4 * maxAbs(gRow),
          'GradCAM gradient row',
        );
        // Partial LRP's input: the last block's attention relevance under the plain LRP rules.
        const pRow = goldenArray(g, 'debug.lrp_last_layer.top.attn_cam_row0');
        assert.ok(maxAbsDiff(row0(ctx.attnCam('lrp', last)), pRow) <= 1e-3 * maxAbs(pRow), 'partial-LRP attn_cam row');
      });
    });

    test(`${caseName}: per-block matrices fed into the rollout (target class)`, () => {
      tf.tidy(() => {
        const ctx = new PassContext(vitPass(model, input), meta.target_class, [ta], { startLayer: 0 });
        for (let l = 0; l < model.depth; l++) {
          const mine = tf.mean(tf.relu(tf.mul(ctx.gradient('lrp', l), ctx.attnCam('ours', l))), 1).dataSync();
          const ref = goldenArray(g, `debug.transformer_attribution.target.block_cam.block${l}`);
          assert.ok(pearson(mine, ref) >= 0.99, `block_cam ${l}`);
        }
      });
    });
  }

  test('a batch gives the same maps as single runs', () => {
    const a = inputTensor(readGoldenTensors('vit', 'S1', 'case-random.safetensors'));
    const b = inputTensor(readGoldenTensors('vit', 'S1', 'case-smooth.safetensors'));
    const batch = tf.concat([a, b], 0) as tf.Tensor4D;
    for (const classes of ['top', [6, 3]] as const) {
      const both = explain(model, batch, METHODS, { classes: classes === 'top' ? 'top' : [...classes] });
      const one = explain(model, a, METHODS, { classes: classes === 'top' ? 'top' : classes[0] });
      const two = explain(model, b, METHODS, { classes: classes === 'top' ? 'top' : classes[1] });
      assert.deepEqual(both.predicted, [one.predicted[0], two.predicted[0]]);
      both.methods.forEach((m, i) => {
        for (const [k, single] of [one, two].entries()) {
          const s = single.methods[i]!;
          assert.deepEqual(m.classes?.[k], s.classes?.[0]);
          const d = maxAbsDiff(m.raw[k]!, s.raw[0]!);
          assert.ok(d <= 1e-6 * maxAbs(s.raw[0]!), `${m.method}, sample ${k}: batch vs single raw max|Δ| ${d}`);
        }
      });
    }
  });

  test('start layer: transformer attribution from block s ignores blocks below s', () => {
    const g = readGoldenTensors('vit', 'S1', 'case-smooth.safetensors');
    const x = inputTensor(g);
    const s0 = explain(model, x, [ta], { startLayer: 0 }).methods[0]!.raw[0]!;
    const s1 = explain(model, x, [ta], { startLayer: 1 }).methods[0]!.raw[0]!;
    const s2 = explain(model, x, [ta], { startLayer: 2 }).methods[0]!.raw[0]!;
    assert.ok(maxAbsDiff(s0, s1) > 1e-3 * maxAbs(s1), 'start 0 and 1 differ');
    assert.ok(maxAbsDiff(s1, s2) > 1e-3 * maxAbs(s1), 'start 1 and 2 differ');
    assert.throws(() => explain(model, x, [ta], { startLayer: 3 }), /out of range: the model has 3 blocks/);
  });

  test('class out of range is a clear error', () => {
    const x = inputTensor(readGoldenTensors('vit', 'S1', 'case-smooth.safetensors'));
    assert.throws(() => explain(model, x, [ta], { classes: 10 }), /class 10 is out of range: the model has 10 classes/);
  });
});

test('registry: six methods, script aliases, all', () => {
  assert.deepEqual(
    METHODS.map((m) => m.name),
    ['rollout', 'raw_attention', 'gradcam', 'lrp', 'partial_lrp', 'transformer_attribution'],
  );
  assert.equal(findMethod('attn_last_layer').name, 'raw_attention');
  assert.equal(findMethod('attn_gradcam').name, 'gradcam');
  assert.equal(findMethod('full_lrp').name, 'lrp');
  assert.equal(findMethod('lrp_last_layer').name, 'partial_lrp');
  assert.equal(resolveMethods(['all']).length, 6);
  assert.deepEqual(
    resolveMethods(['rollout,gradcam', 'rollout']).map((m) => m.name),
    ['rollout', 'gradcam'],
  );
  assert.throws(() => findMethod('grad_rollout'), /unknown method 'grad_rollout'/);
});
