import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import { f64Products, jsMatMulF64 } from '../src/engine/f64-matmul.js';
import * as tf from '../src/engine/tf.js';
import { bertFloat64 } from '../src/methods/float64-passes.js';
import { findMethod } from '../src/methods/registry.js';
import { bertForwardF64, bertTraceFromHost } from '../src/models/bert-f64.js';
import { bertRelpropF64 } from '../src/models/bert-relprop-f64.js';
import { hostRuleSets } from '../src/rules/float64.js';
import { RULE_SETS } from '../src/rules/index.js';
import type { RuleSetName } from '../src/rules/types.js';
import { goldenBert } from './helpers/bert-goldens.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';
import { goldenArray } from './helpers/golden.js';

/**
 * The float64 BERT relevance pass (src/models/bert-relprop-f64.ts) on the float64 forward's exact values, on the
 * padded goldens P1, P2 (golden bert/README-geometries.md): against the float32 pass (`relprop`) on the same trace
 * rounded to float32, and full LRP against the official float64 output.
 */

const rel = (a: ArrayLike<number>, ref: ArrayLike<number>) => maxAbsDiff(a, ref) / maxAbs(ref);

/**
 * Bounds, each the largest value measured here (wasm, onnxruntime-node's double GEMM) over the six sequences, both
 * classes, both rule sets and both depths, times about 3; d(x, ref) = max|x − ref| / max|ref|, the worst layer or the
 * input relevance:
 * - the float32 pass (`relprop`) on the same trace rounded to float32, against the float64 one: the paper's rules
 *   ('ours') 1.73e-6 (P2/half_pad, predicted class, the input relevance): bound 5e-6; the plain LRP rules to the last layer 3.28e-7 (P2/no_pad, other): bound 1e-6; the plain rules through every
 *   layer (full LRP, ill-conditioned: each Linear's sign halves have their own denominators) 3.87e-6 (P2/half_pad,
 *   predicted, the input relevance): bound 1.2e-5. So on these models the float32 pass is float32 noise away, not
 *   far off; full LRP is also held to the official float64 output:
 * - full LRP (the input relevance summed over the hidden size, [CLS] 0, as src/methods/lrp.ts) summed in float64,
 *   against the official float64 output: 5.26e-12 (P2/no_pad, other; the official float32 output is 2.15e-3 away
 *   there): bound 1.5e-11.
 * - JavaScript products against onnxruntime's: the same float64 values up to summation order, 3.37e-15: bound 1e-14.
 */
const TOL_OURS = 5e-6;
const TOL_LRP_LAST = 1e-6;
const TOL_LRP_FULL = 1.2e-5;
const TOL_GOLDEN = 1.5e-11;
const TOL_JS = 1e-14;

describe('float64 BERT relevance pass (golden P1, P2)', async () => {
  await initBackend('wasm');
  const { matmul } = await f64Products();
  const rules = hostRuleSets(matmul);
  const rulesJs = hostRuleSets(jsMatMulF64);
  for (const name of ['P1', 'P2']) {
    const { meta, g, model } = goldenBert(name);
    const depth = model.depth;
    const D = model.config.hidden_size;
    for (const seq of meta.sequences) {
      test(`${name}/${seq.name}: against the float32 pass on the rounded trace; full LRP vs the float64 golden`, async (t) => {
        const ids = Int32Array.from(seq.input_ids);
        const mask = Int32Array.from(seq.attention_mask);
        const N = ids.length;
        const host = await bertForwardF64(model, ids, mask, 1, N, matmul);
        const lines: string[] = [];
        for (const [target, cls] of [
          ['pred', seq.predicted_class],
          ['other', seq.other_class],
        ] as const) {
          for (const set of ['ours', 'lrp'] as RuleSetName[]) {
            let full: Float64Array | undefined;
            for (const stop of ['input', depth - 1] as const) {
              const what = `${name}/${seq.name} ${target} ${set} to ${stop}`;
              const mine = await bertRelpropF64(model, host, 0, cls, rules[set], stop, matmul);
              // To the last layer: the same arithmetic as the deeper pass's, so the same numbers.
              if (stop === 'input') full = mine.attnCam[depth - 1];
              else assert.deepEqual(mine.attnCam[depth - 1], full, `${what}: the last layer, as the deeper pass's`);
              const lowest = stop === 'input' ? 0 : stop;
              assert.equal(mine.attnCam.length, depth);
              for (let l = 0; l < depth; l++) {
                if (l < lowest) assert.equal(mine.attnCam[l], undefined, `${what}: layer ${l}`);
                else assert.equal(mine.attnCam[l]!.length, model.config.num_attention_heads * N * N);
              }
              assert.equal(mine.input?.length, stop === 'input' ? N * D : undefined);
              const f32 = tf.tidy(() => {
                const seed = tf.oneHot(tf.tensor1d([cls], 'int32'), model.numLabels).toFloat() as tf.Tensor2D;
                const r = model.relprop(bertTraceFromHost(model, host, mask), seed, RULE_SETS[set], stop);
                return {
                  attn: r.attnCam.map((a) => (a ? (a.dataSync() as Float32Array).slice() : undefined)),
                  input: r.input ? (r.input.dataSync() as Float32Array).slice() : undefined,
                };
              });
              const dists = mine.attnCam.flatMap((a, l) => (a ? [rel(f32.attn[l]!, a)] : []));
              if (mine.input) dists.push(rel(f32.input!, mine.input));
              const d = Math.max(...dists);
              const tol = set === 'ours' ? TOL_OURS : stop === 'input' ? TOL_LRP_FULL : TOL_LRP_LAST;
              assert.ok(d <= tol, `${what}: the float32 pass ${d} from float64`);
              const js = await bertRelpropF64(model, host, 0, cls, rulesJs[set], stop, jsMatMulF64);
              const dJs = Math.max(
                ...mine.attnCam.flatMap((a, l) => (a ? [rel(js.attnCam[l]!, a)] : [])),
                ...(mine.input ? [rel(js.input!, mine.input)] : []),
              );
              assert.ok(dJs <= TOL_JS, `${what}: JavaScript products ${dJs} from onnxruntime's`);
              let line = `${target} ${set} to ${stop}: float32 pass ${d.toExponential(2)} (${dists.map((x) => x.toExponential(2)).join(', ')}), JS ${dJs.toExponential(2)}`;
              if (set === 'lrp' && stop === 'input') {
                // Full LRP: summed over the hidden size, [CLS] 0.
                const map = new Float64Array(N);
                for (let n = 1; n < N; n++) for (let j = 0; j < D; j++) map[n]! += mine.input![n * D + j]!;
                const call = `orig_lrp.generate_full_lrp.${target}`;
                const ref64 = goldenArray(g, `${seq.name}.${call}_f64`);
                const dGolden = rel(map, ref64);
                const dOfficial = rel(goldenArray(g, `${seq.name}.${call}`), ref64);
                assert.ok(dGolden <= TOL_GOLDEN, `${what}: full LRP ${dGolden} from the official float64`);
                line += `; full LRP vs float64 golden ${dGolden.toExponential(2)} (official float32 ${dOfficial.toExponential(2)})`;
              }
              lines.push(line);
            }
          }
        }
        t.diagnostic(lines.join('\n'));
      });
    }
  }
});

/**
 * A batch: `bertFloat64` (src/methods/float64-passes.ts) runs the pass per sample and lays the results out as the
 * tensor pass would ([B·H, N, N] per layer, the input relevance [B, N, D]); each sample's part is that sample's own
 * batch-1 pass rounded to float32 (the forward's products over a batch give the same float64 values up to summation
 * order: measured identical; held to 2⁻²³ of max, one float32 step).
 */
test('P1: a batch of two (different masks and classes) = each sample alone, through bertFloat64', async () => {
  await initBackend('wasm');
  const { matmul } = await f64Products();
  const rules = hostRuleSets(matmul);
  const { meta, model } = goldenBert('P1');
  const seq = meta.sequences.find((s) => s.name === 'half_pad')!;
  const N = seq.input_ids.length;
  const one = Int32Array.from(seq.input_ids);
  const ids = Int32Array.from([...one, ...one]);
  const masks = [Int32Array.from(seq.attention_mask), new Int32Array(N).fill(1)];
  const classes = [seq.other_class, seq.predicted_class];
  const methods = ['lrp', 'transformer_attribution', 'partial_lrp'].map((m) => findMethod(m));
  const batch = await bertFloat64(
    model,
    ids,
    Int32Array.from([...masks[0]!, ...masks[1]!]),
    2,
    N,
    methods,
    { startLayer: 0 },
    classes,
  );
  assert.deepEqual(batch.classes.lrp, classes);
  const H = model.config.num_attention_heads;
  const D = model.config.hidden_size;
  const stops: Record<RuleSetName, number | 'input'> = { lrp: 'input', ours: 0 };
  for (const set of ['lrp', 'ours'] as const) {
    const maps = batch.passes.relevance[set]!;
    assert.ok(maps, set);
    assert.equal(maps.input?.length, set === 'lrp' ? 2 * N * D : undefined);
    for (let b = 0; b < 2; b++) {
      const host = await bertForwardF64(model, one, masks[b], 1, N, matmul);
      const r = await bertRelpropF64(model, host, 0, classes[b]!, rules[set], stops[set], matmul);
      r.attnCam.forEach((a, l) => {
        const part = maps.attn[l]!.subarray(b * H * N * N, (b + 1) * H * N * N);
        const d = rel(part, Float32Array.from(a!));
        assert.ok(d <= 2 ** -23, `${set} sample ${b} layer ${l}: ${d}`);
      });
      if (r.input) {
        const part = maps.input!.subarray(b * N * D, (b + 1) * N * D);
        const d = rel(part, Float32Array.from(r.input));
        assert.ok(d <= 2 ** -23, `${set} sample ${b} input: ${d}`);
      }
    }
  }
  await assert.rejects(bertRelpropF64(model, batch.trace, 2, 0, rules.lrp, 'input', matmul), /sample 2/);
  await assert.rejects(bertRelpropF64(model, batch.trace, 0, 5, rules.lrp, 'input', matmul), /class 5/);
  await assert.rejects(bertRelpropF64(model, batch.trace, 0, 0, rules.lrp, model.depth, matmul), /out of range/);
});
