import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BackendChoice, initBackend } from '../src/engine/backend.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { explainTokens } from '../src/methods/explain.js';
import { findMethod } from '../src/methods/registry.js';
import { BertForSequenceClassification } from '../src/models/bert.js';
import { readBertConfig } from '../src/models/bert-config.js';
import { bertWeightsFromStateDict } from '../src/models/bert-weights.js';
import { maxAbs, maxAbsDiff } from './helpers/compare.js';
import { goldenArray, goldenPath, readGoldenTensors, readJson } from './helpers/golden.js';

// The shared method registry on BERT (the same names as for ViT), against every method output of the
// official ExplanationGenerator in golden/bert/tiny_a: both sequences (one padded), every class choice.
interface Meta {
  sequences: { name: string; input_ids: number[]; attention_mask: number[]; predicted_class: number }[];
}

/**
 * Registry method → (reference model file, generator output name, start-layer option, bound on max|Δ|/max|ref|).
 * golden/bert/README.md suggests no tolerance, so each bound is the error measured here (both sequences, every
 * class choice; backend wasm, the default here; the cpu backend in brackets) times about 3 (2.8–3.8):
 * transformer attribution from layer 0 5.2e-5 (4.2e-5), from layer 1 1.3e-5 (4.3e-6); partial LRP 1.8e-5 (6.6e-6);
 * full LRP 6.7e-5 (4.0e-5); GradCAM 1.8e-6 (7.9e-7); raw attention 4.2e-7 (1.6e-7); rollout 2.1e-7 (1.4e-7).
 * On webgpu (lavapipe; test/golden-webgpu.test.ts) every error is at or below wasm's but the two ill-conditioned
 * ones: transformer attribution from layer 0 1.68e-4 and full LRP 1.65e-4, bounded at 5e-4 (× 3.0) on every backend.
 */
const CASES: { method: string; ref: string; startLayer?: number; perClass: boolean; tol: number }[] = [
  {
    method: 'transformer_attribution',
    ref: 'ours.generate_LRP.start_layer0',
    startLayer: 0,
    perClass: true,
    tol: 5e-4,
  },
  { method: 'transformer_attribution', ref: 'ours.generate_LRP.start_layer1', perClass: true, tol: 4e-5 },
  { method: 'partial_lrp', ref: 'orig_lrp.generate_LRP_last_layer', perClass: true, tol: 6e-5 },
  { method: 'lrp', ref: 'orig_lrp.generate_full_lrp', perClass: true, tol: 5e-4 },
  { method: 'gradcam', ref: 'orig_lrp.generate_attn_gradcam', perClass: true, tol: 5e-6 },
  { method: 'raw_attention', ref: 'orig_lrp.generate_attn_last_layer', perClass: false, tol: 1.5e-6 },
  { method: 'rollout', ref: 'orig_lrp.generate_rollout.start_layer0', perClass: false, tol: 6e-7 },
];

describe('BERT methods through the shared registry (golden bert/tiny_a)', async () => {
  // BENCH_BACKEND: the backend to hold to the goldens (test/golden-webgpu.test.ts runs this file on webgpu).
  await initBackend((process.env.BENCH_BACKEND as BackendChoice | undefined) || 'auto');
  const cfgFile = goldenPath('bert', 'tiny_a', 'config.json');
  const wFile = goldenPath('bert', 'tiny_a', 'weights.safetensors');
  const cfg = readBertConfig(cfgFile);
  const model = new BertForSequenceClassification(
    cfg,
    bertWeightsFromStateDict(readSafetensors(wFile).tensors, cfg, wFile),
  );
  const meta = readJson<Meta>('bert', 'tiny_a', 'meta.json');
  const g = readGoldenTensors('bert', 'tiny_a', 'outputs.safetensors');
  for (const seq of meta.sequences) {
    test(`${seq.name}: every method, every class choice`, async () => {
      const ids = Int32Array.from(seq.input_ids);
      const mask = Int32Array.from(seq.attention_mask);
      for (const c of CASES) {
        for (const t of c.perClass ? ['pred', 'c0', 'c1'] : ['pred']) {
          const classes = t === 'pred' ? 'top' : Number(t.slice(1));
          const ex = await explainTokens(model, ids, mask, 1, ids.length, [findMethod(c.method)], {
            classes,
            startLayer: c.startLayer,
          });
          const m = ex.methods[0]!;
          const ref = goldenArray(g, c.perClass ? `${seq.name}.${c.ref}.${t}` : `${seq.name}.${c.ref}`);
          assert.deepEqual(m.rawShape, [ids.length]);
          const d = maxAbsDiff(m.raw[0]!, ref);
          assert.ok(
            d <= c.tol * maxAbs(ref),
            `${seq.name} ${c.method} (${c.ref}) ${t}: max|Δ| ${d} vs max ${maxAbs(ref)}`,
          );
          if (m.classes) assert.equal(m.classes[0], t === 'pred' ? seq.predicted_class : Number(t.slice(1)));
        }
      }
    });
  }
});

test('bench explain on BERT token ids: the golden per-token vectors through the command line', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { bench } = await import('./helpers/cli.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-explain-bert-'));
  const json = join(dir, 'out.json');
  const html = join(dir, 'out.html');
  const r = bench([
    'explain',
    '--model-config',
    goldenPath('bert', 'tiny_a', 'config.json'),
    '--weights',
    goldenPath('bert', 'tiny_a', 'weights.safetensors'),
    '--token-ids',
    '1,17,33,5,48,22,9,61,2',
    '--method',
    'transformer_attribution,rollout',
    '--json',
    json,
    '--html',
    html,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(readFileSync(json, 'utf8')) as {
    backend: string;
    predicted: number;
    methods: Record<string, { raw: number[] }>;
  };
  // The command ran on the backend this file is held to (BENCH_BACKEND, set by golden-webgpu.test.ts).
  if (process.env.BENCH_BACKEND) assert.equal(out.backend, process.env.BENCH_BACKEND);
  const g = readGoldenTensors('bert', 'tiny_a', 'outputs.safetensors');
  assert.equal(out.predicted, 1);
  // The defaults are the reference's: transformer attribution from the last layer, rollout from layer 0.
  // Bounds on max|Δ|/max|ref|, measured (wasm) 1.3e-5 and 1.4e-7, each × about 3 (the CASES bounds above).
  for (const [m, ref, tol] of [
    ['transformer_attribution', 'seq0.ours.generate_LRP.start_layer1.pred', 4e-5],
    ['rollout', 'seq0.orig_lrp.generate_rollout.start_layer0', 6e-7],
  ] as const) {
    const want = goldenArray(g, ref);
    assert.ok(maxAbsDiff(out.methods[m]!.raw, want) <= tol * maxAbs(want), m);
  }
  assert.match(readFileSync(html, 'utf8'), /<h2>transformer_attribution \(class 1\)<\/h2>/);
  const bad = bench([
    'explain',
    '--model-config',
    goldenPath('bert', 'tiny_a', 'config.json'),
    '--weights',
    goldenPath('bert', 'tiny_a', 'weights.safetensors'),
    '--token-ids',
    '1,999,2',
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--token-ids: expected comma-separated ids in \[0, 64\), found 999/);
});
