import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f64Products } from '../src/engine/f64-matmul.js';
import * as tf from '../src/engine/tf.js';
import { vitPass } from '../src/methods/model-pass.js';
import { vitAttentionGradientsF64 } from '../src/models/vit-backward-f64.js';
import { type ExactVitSample, headsFromHost, traceFromHost, vitForwardF64 } from '../src/models/vit-f64.js';
import { vitRelpropF64 } from '../src/models/vit-relprop-f64.js';
import { hostRuleSets } from '../src/rules/float64.js';
import { RULE_SETS } from '../src/rules/index.js';
import { assertClose } from './helpers/compare.js';
import type { FormulaImage } from './helpers/formula-weights.js';
import { caseInput, type GoldenCase, loadGoldenVit, readGoldenTensors, readJson } from './helpers/golden.js';

/**
 * The ViT's float64 backward and relevance passes (src/models/vit-backward-f64.ts, vit-relprop-f64.ts; used by
 * `--forward f64`) compute what the backend's passes compute (`attentionGradients`, `relprop` in src/models/vit.ts):
 * on the golden S1 model and its smooth case, run on the same forward (the float64 one; the backend's passes read it
 * rounded), the two agree to float32 noise. The transformer-attribution rules and the gradients are well conditioned
 * here; full LRP is not (the official float32 map is 1.9e-2 of max from float64), so it is checked against the
 * official float64 maps by the golden suites (vit-geometries-f64, vit-golden-f64), not here.
 *
 * Measured (max|Δ| / max|float64|): attention gradients ≤ 5.9e-7 (block 0, classifier tail), 1.5e-6 at the input;
 * 'ours' relevance of the attention ≤ 3.6e-7; partial LRP's block 1.2e-7. Bound 5e-6, about three times the largest.
 */
const REL = 5e-6;

test('S1 smooth: float64 backward and relevance passes = the backend passes on the same forward', async () => {
  const model = await loadGoldenVit('S1', 'wasm');
  const meta = readJson<GoldenCase & { image?: FormulaImage }>('vit', 'S1', 'case-smooth.json');
  const input = caseInput(readGoldenTensors('vit', 'S1', 'case-smooth.safetensors'), meta);
  const { matmul } = await f64Products();
  let sample: ExactVitSample | undefined;
  const host = await vitForwardF64(model, input.dataSync() as Float32Array, 1, matmul, async (s) => {
    sample = s;
  });
  const depth = model.config.depth;
  const cls = 3;
  for (const tail of ['lrp', 'classifier'] as const) {
    const g64 = await vitAttentionGradientsF64(model, sample!, tail, cls, 'input', matmul);
    tf.tidy(() => {
      const trace = traceFromHost(model, host, input);
      const eps = tail === 'lrp' ? model.config.lrp_final_norm_eps : model.config.final_norm_eps;
      const seed = tf.oneHot(tf.tensor1d([cls], 'int32'), model.config.num_classes).toFloat() as tf.Tensor2D;
      const g32 = model.attentionGradients(trace, eps, seed, 'input');
      for (let l = 0; l < depth; l++)
        assertClose(g32.attn[l]!.dataSync(), g64.attn[l]!, REL, `${tail} gradient, block ${l}`);
      assertClose(g32.input!.dataSync(), g64.input!, REL, `${tail} gradient at the input`);
    });
  }
  const rules = hostRuleSets(matmul);
  for (const [name, stop] of [
    ['ours', 0],
    ['lrp', depth - 1],
  ] as const) {
    const r64 = await vitRelpropF64(model, sample!, cls, rules[name], stop, matmul);
    tf.tidy(() => {
      const trace = traceFromHost(model, host, input);
      const seed = tf.oneHot(tf.tensor1d([cls], 'int32'), model.config.num_classes).toFloat() as tf.Tensor2D;
      const r32 = model.relprop(trace, headsFromHost(host).lrp, seed, RULE_SETS[name], stop);
      for (let l = stop; l < depth; l++)
        assertClose(r32.attnCam[l]!.dataSync(), r64.attnCam[l]!, REL, `${name} relevance, block ${l}`);
      assert.equal(r64.attnCam[stop - 1], undefined);
    });
  }
  input.dispose();
});

test('a ModelPass serves a host pass only as deep as it was computed, and runs the backend pass otherwise', async () => {
  const model = await loadGoldenVit('S1', 'wasm');
  const meta = readJson<GoldenCase & { image?: FormulaImage }>('vit', 'S1', 'case-smooth.json');
  const input = caseInput(readGoldenTensors('vit', 'S1', 'case-smooth.safetensors'), meta);
  const depth = model.config.depth;
  const N = model.geo.numTokens;
  const H = model.config.num_heads;
  // A stand-in host pass to block 1: recognisable values (all 7).
  const host = {
    to: 1,
    attn: Array.from({ length: depth }, (_, l) => (l >= 1 ? new Float32Array(H * N * N).fill(7) : undefined)),
  };
  tf.tidy(() => {
    const pass = vitPass(model, input, undefined, { gradients: { lrp: host }, relevance: { ours: host } });
    const seed = tf.oneHot(tf.tensor1d([3], 'int32'), model.config.num_classes).toFloat() as tf.Tensor2D;
    assert.equal(pass.relprop(seed, RULE_SETS.ours, 1).attnCam[1]!.dataSync()[0], 7);
    assert.equal(pass.attentionGradients('lrp', seed, 1).attn[1]!.dataSync()[0], 7);
    // Deeper than computed: the backend's own pass.
    const r = pass.relprop(seed, RULE_SETS.ours, 0);
    assert.notEqual(r.attnCam[1]!.dataSync()[0], 7);
    assert.ok(r.attnCam[0]);
    assert.notEqual(pass.attentionGradients('lrp', seed, 0).attn[1]!.dataSync()[0], 7);
  });
  input.dispose();
});
