import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { type BackendChoice, initBackend } from '../src/engine/backend.js';
import { explainTokens } from '../src/methods/explain.js';
import { findMethod } from '../src/methods/registry.js';
import { BERT_GOLDEN_CALLS, bertCallLabel, bertCallName, goldenBert } from './helpers/bert-goldens.js';
import { assertClose, maxAbs, maxAbsDiff } from './helpers/compare.js';
import { goldenArray } from './helpers/golden.js';

/**
 * bench's BERT on the padded golden geometries P1, P2 (scripts/golden/make-bert-geometries.py; golden
 * bert/README-geometries.md): two random BERTs (2 layers × 3 heads × D 48, 2 labels; 4 layers × 4 heads × D 64,
 * 3 labels; weights rebuilt from their formula), each on three batch-1 sequences - half of the positions padding,
 * one padding position, none - every method of the registry through explainTokens, for the predicted class and one
 * other class, against the official ExplanationGenerator outputs in float32 and their float64 twins.
 *
 * Padding, as the official code has it: padded positions get exactly 0 from every method (their attention is
 * exp(−10000) = 0); transformer attribution's [CLS] entry is the minimum of the whole CLS row, padding included, so
 * it is exactly 0 on a padded sequence (not the minimum over the real tokens); GradCAM normalises over the whole
 * L×L matrix, padded rows included. bench matches the padded outputs; its errors are the same on the sequences
 * truncated to their real tokens (checked when this test was written), so none comes from the padding.
 */

/**
 * Registry method (and start layer) → the official output it reproduces, and the bound on max|Δ| / max|official
 * float32|. golden/bert/README-geometries.md suggests none, so each bound is the largest error measured here over the
 * six sequences and both class choices (backend wasm, the default here; the cpu backend in brackets) times about 3:
 * transformer attribution from layer 0 1.52e-4 (9.8e-5), from the last layer 2.45e-4 (2.3e-4); partial LRP 5.95e-4
 * (5.1e-4); full LRP 6.83e-3 (2.4e-3); GradCAM 2.10e-5 (1.4e-5); generic attention 1.38e-6 (2.0e-6); raw attention
 * 8.5e-7 (6.1e-7); rollout 3.3e-7 (2.6e-7). The LRP-based ones are ill-conditioned (the official float32 output is
 * itself up to 2.1e-3 from its float64 twin), hence the float64 checks below.
 */
const TOLERANCE: Record<string, number> = {
  'transformer_attribution@0': 5e-4,
  transformer_attribution: 7.5e-4,
  partial_lrp: 2e-3,
  lrp: 2e-2,
  gradcam: 6e-5,
  generic_attention: 6e-6,
  raw_attention: 2.5e-6,
  rollout: 1e-6,
};
const CASES = BERT_GOLDEN_CALLS.map((c) => ({ ...c, tol: TOLERANCE[bertCallLabel(c)]! }));

/** Logits, max|Δ| / max(1, max|official|): 7.5e-7 (7.2e-7) measured; bound as tiny_a's (test/bert-golden.test.ts). */
const LOGITS_TOL = 2.5e-6;

/**
 * The float64 checks of the LRP-based methods, with d(x) = max|x − f64| / max|f64|:
 * - ratio d(bench) / d(official float32) ≤ 1, asserted only on wasm and only for the entries below, where it holds.
 *   Elsewhere (24 of 48 entries on wasm, 12 on cpu; ratios up to 15.2: full LRP on P1/no_pad) bench is further from
 *   the float64 twin than the official float32 run, whose operations are the twin's in the same order;
 * - d(bench) ≤ 1.5 × the output's float32 noise (meta.json: the official float32 calls on models whose weights are
 *   each moved by one ulp, largest of 4 draws), on every entry: measured d(bench) / noise ≤ 0.88 on wasm and on cpu
 *   (transformer attribution from layer 0 on P1/one_pad, predicted class), bound 1.7× that.
 */
const RATIO_HOLDS_WASM = new Set([
  'P1/half_pad transformer_attribution@0 pred',
  'P1/half_pad transformer_attribution pred',
  'P1/half_pad partial_lrp pred',
  'P1/half_pad lrp pred',
  'P1/half_pad transformer_attribution@0 other',
  'P1/half_pad transformer_attribution other',
  'P1/half_pad partial_lrp other',
  'P1/half_pad lrp other',
  'P1/one_pad transformer_attribution pred',
  'P1/one_pad partial_lrp pred',
  'P1/one_pad transformer_attribution other',
  'P1/one_pad partial_lrp other',
  'P1/no_pad transformer_attribution@0 pred',
  'P1/no_pad transformer_attribution pred',
  'P1/no_pad partial_lrp pred',
  'P1/no_pad transformer_attribution@0 other',
  'P1/no_pad transformer_attribution other',
  'P1/no_pad partial_lrp other',
  'P2/half_pad lrp pred',
  'P2/half_pad lrp other',
  'P2/no_pad transformer_attribution pred',
  'P2/no_pad partial_lrp pred',
  'P2/no_pad transformer_attribution other',
  'P2/no_pad partial_lrp other',
]);
const NOISE_MARGIN = 1.5;

const CONFIGS = ['P1', 'P2'];

describe('BERT golden geometries with padding', async () => {
  // BENCH_BACKEND: the backend to hold to the goldens (default auto = wasm here).
  const backend = (await initBackend((process.env.BENCH_BACKEND as BackendChoice | undefined) || 'auto')).name;
  for (const name of CONFIGS) {
    const { meta, g, sd, model } = goldenBert(name);

    test(`${name}: the formula weights are the generator's, bit for bit`, () => {
      assert.deepEqual([...sd.keys()].sort(), Object.keys(meta.weights.tensors).sort());
      for (const [k, t] of sd) {
        const d = t.data as Float32Array;
        const sha = createHash('sha256')
          .update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength))
          .digest('hex');
        assert.equal(sha, meta.weights.tensors[k]!.sha256_f32le, k);
      }
    });

    for (const seq of meta.sequences) {
      test(`${name}/${seq.name}: logits, class choice and every method`, async (t) => {
        const ids = Int32Array.from(seq.input_ids);
        const mask = Int32Array.from(seq.attention_mask);
        const N = ids.length;
        const padded = seq.attention_mask.some((v) => v === 0);
        const table: string[] = [];
        for (const [target, classes] of [
          ['pred', 'top'],
          ['other', seq.other_class],
        ] as const) {
          for (const c of CASES) {
            if (!c.perClass && target === 'other') continue;
            const ex = await explainTokens(model, ids, mask, 1, N, [findMethod(c.method)], {
              classes,
              startLayer: c.startLayer,
            });
            const label = bertCallLabel(c);
            const what = `${name}/${seq.name} ${label} ${target}`;
            const lg = goldenArray(g, `${seq.name}.logits`);
            assertClose(ex.logits[0]!, lg, LOGITS_TOL, `${what}: logits`, 1);
            assert.equal(ex.predicted[0], seq.predicted_class, `${what}: predicted class`);
            const m = ex.methods[0]!;
            if (m.classes) assert.deepEqual(m.classes, [target === 'pred' ? seq.predicted_class : seq.other_class]);
            const call = bertCallName(c, meta.start_layer_last, target);
            const ref = goldenArray(g, `${seq.name}.${call}`);
            const f64 = goldenArray(g, `${seq.name}.${call}_f64`);
            const mine = m.raw[0]!;
            assert.deepEqual(m.rawShape, [N]);
            const d32 = maxAbsDiff(mine, ref) / maxAbs(ref);
            assert.ok(d32 <= c.tol, `${what}: max|Δ|/max|official| ${d32} > ${c.tol}`);
            // Padding: exactly 0 in both; transformer attribution's [CLS] entry is the row minimum, padding included.
            for (let i = 0; i < N; i++) {
              if (mask[i] !== 0) continue;
              assert.ok(ref[i] === 0, `${what}: the official output at padding position ${i} is ${ref[i]}`);
              assert.ok(mine[i] === 0, `${what}: bench's output at padding position ${i} is ${mine[i]}`);
            }
            if (c.method === 'transformer_attribution' && padded) {
              assert.ok(ref[0] === 0, `${what}: the official [CLS] entry is ${ref[0]}`);
              assert.ok(
                mine[0] === 0,
                `${what}: bench's [CLS] entry (the row minimum, padding included) is ${mine[0]}`,
              );
            }
            if (!c.lrp) continue;
            const s64 = maxAbs(f64);
            const dBench = maxAbsDiff(mine, f64) / s64;
            const dOfficial = maxAbsDiff(ref, f64) / s64;
            const noise = seq.ulp_noise_vs_f64_max_abs_diff_over_max_abs[call]!;
            const key = `${name}/${seq.name} ${label} ${target}`;
            table.push(
              `${key}: bench ${dBench.toExponential(2)}, official f32 ${dOfficial.toExponential(2)}, ratio ` +
                `${(dBench / dOfficial).toFixed(2)}, ulp noise ${noise.toExponential(2)}`,
            );
            assert.ok(dBench <= NOISE_MARGIN * noise, `${what}: ${dBench} from float64 > ${NOISE_MARGIN} × ${noise}`);
            if (backend === 'wasm' && RATIO_HOLDS_WASM.has(key))
              assert.ok(dBench <= dOfficial, `${what}: ${dBench} from float64, the official float32 ${dOfficial}`);
          }
        }
        t.diagnostic(table.join('\n'));
      });
    }
  }
});

/**
 * With --forward f64 (the forward in float64, src/models/bert-f64.ts, and the backward and relevance passes too,
 * src/models/bert-backward-f64.ts, bert-relprop-f64.ts), every output is at least as close to the float64 twin as the
 * official float32 one, on all 84 entries. Measured on wasm, ratio d_bench / d_official: ≤ 0.12 (transformer
 * attribution; 0.22 with the relevance pass in float32), 0.077 (partial LRP; 0.20), 0.011 (full LRP; 0.007: its
 * largest ratio is now on P1/no_pad, predicted class, where the remaining 3.0e-7 is the float32 sum over the hidden
 * size in src/methods/lrp.ts, the float64 pass summed in float64 being 3e-13 away), 0.20 (generic attention), 0.29
 * (raw attention), 0.28 (rollout), and GradCAM 0.72, and 1 on P1/half_pad (other class), where both outputs are the
 * float64 one rounded to float32 (2.4e-8 of max; with the float32 backward pass it was 3.6). Bound 1, the issue's, no
 * margin. Every output's distance to float64, d_bench: transformer attribution ≤ 1.1e-7 (5.8e-7 with the float32
 * relevance pass), partial LRP ≤ 8.5e-8 (2.9e-7), full LRP ≤ 3.0e-7 (2.4e-6), GradCAM ≤ 4.4e-7, generic attention
 * ≤ 1.3e-7, raw attention ≤ 8.1e-8, rollout ≤ 4.9e-8; bound 1.5e-6, the largest (GradCAM) times about 3.4.
 */
describe('BERT golden geometries with padding, --forward f64 (wasm)', async () => {
  await initBackend('wasm');
  for (const name of CONFIGS) {
    const { meta, g, model } = goldenBert(name);
    for (const seq of meta.sequences) {
      test(`${name}/${seq.name}: every output at least as close to float64 as the official float32`, async (t) => {
        const saved = process.env.BENCH_FORWARD;
        const table: string[] = [];
        process.env.BENCH_FORWARD = 'f64';
        try {
          const ids = Int32Array.from(seq.input_ids);
          const mask = Int32Array.from(seq.attention_mask);
          for (const [target, classes] of [
            ['pred', 'top'],
            ['other', seq.other_class],
          ] as const) {
            for (const c of CASES) {
              if (!c.perClass && target === 'other') continue;
              const ex = await explainTokens(model, ids, mask, 1, ids.length, [findMethod(c.method)], {
                classes,
                startLayer: c.startLayer,
              });
              const what = `${name}/${seq.name} ${bertCallLabel(c)} ${target}`;
              const call = bertCallName(c, meta.start_layer_last, target);
              const f64 = goldenArray(g, `${seq.name}.${call}_f64`);
              const s64 = maxAbs(f64);
              const dBench = maxAbsDiff(ex.methods[0]!.raw[0]!, f64) / s64;
              assert.ok(dBench <= 1.5e-6, `${what}: ${dBench} of max from float64`);
              // Where the official float32 output equals the float64 one, ours must too.
              const dOfficial = maxAbsDiff(goldenArray(g, `${seq.name}.${call}`), f64) / s64;
              table.push(
                `${what}: bench ${dBench.toExponential(2)}, official f32 ${dOfficial.toExponential(2)}, ratio ` +
                  `${(dBench / dOfficial).toFixed(3)}`,
              );
              assert.ok(dBench <= dOfficial, `${what}: ${dBench} from float64, the official float32 ${dOfficial}`);
            }
          }
          t.diagnostic(table.join('\n'));
        } finally {
          if (saved === undefined) delete process.env.BENCH_FORWARD;
          else process.env.BENCH_FORWARD = saved;
        }
      });
    }
  }
});
