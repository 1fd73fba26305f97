import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { explainTokens } from '../src/methods/explain.js';
import { findMethod } from '../src/methods/registry.js';
import { BertForSequenceClassification } from '../src/models/bert.js';
import { readBertConfig } from '../src/models/bert-config.js';
import { bertWeightsFromStateDict } from '../src/models/bert-weights.js';
import { goldenArray, goldenPath, maxAbs, maxAbsDiff, readGoldenTensors, readJson } from './helpers/golden.js';

// The shared method registry on BERT (the same names as for ViT), against every method output of the
// official ExplanationGenerator in golden/bert/tiny_a: both sequences (one padded), every class choice.
interface Meta {
  sequences: { name: string; input_ids: number[]; attention_mask: number[]; predicted_class: number }[];
}

/** Registry method → (reference model file, generator output name, start-layer option). */
const CASES: { method: string; ref: string; startLayer?: number; perClass: boolean; tol: number }[] = [
  {
    method: 'transformer_attribution',
    ref: 'ours.generate_LRP.start_layer0',
    startLayer: 0,
    perClass: true,
    tol: 1e-3,
  },
  { method: 'transformer_attribution', ref: 'ours.generate_LRP.start_layer1', perClass: true, tol: 1e-3 },
  { method: 'partial_lrp', ref: 'orig_lrp.generate_LRP_last_layer', perClass: true, tol: 1e-3 },
  { method: 'lrp', ref: 'orig_lrp.generate_full_lrp', perClass: true, tol: 1e-3 },
  { method: 'gradcam', ref: 'orig_lrp.generate_attn_gradcam', perClass: true, tol: 1e-4 },
  { method: 'raw_attention', ref: 'orig_lrp.generate_attn_last_layer', perClass: false, tol: 1e-4 },
  { method: 'rollout', ref: 'orig_lrp.generate_rollout.start_layer0', perClass: false, tol: 1e-4 },
];

describe('BERT methods through the shared registry (golden bert/tiny_a)', async () => {
  await initBackend('auto');
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
    test(`${seq.name}: every method, every class choice`, () => {
      const ids = Int32Array.from(seq.input_ids);
      const mask = Int32Array.from(seq.attention_mask);
      for (const c of CASES) {
        for (const t of c.perClass ? ['pred', 'c0', 'c1'] : ['pred']) {
          const classes = t === 'pred' ? 'top' : Number(t.slice(1));
          const ex = explainTokens(model, ids, mask, 1, ids.length, [findMethod(c.method)], {
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
