import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, initBackend } from '../src/engine/backend.js';
import { FileFormatError, type StateDict } from '../src/formats/host-tensor.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { BertForSequenceClassification, type BertTrace } from '../src/models/bert.js';
import { parseBertConfig, readBertConfig } from '../src/models/bert-config.js';
import { bertWeightsFromStateDict, expectedBertKeys } from '../src/models/bert-weights.js';
import { RULE_SETS, type RuleSetName } from '../src/rules/index.js';
import { assertClose } from './helpers/compare.js';
import { goldenArray, goldenPath, readGoldenTensors, readJson } from './helpers/golden.js';

/**
 * The BERT core against the official implementation (golden/bert/README.md, golden/eraser/README.md):
 * forward pass, attention gradients, attention relevance under both rule sets, relevance at the encoder
 * input, and the ExplanationGenerator methods (docs/methods.md#methods-on-bert) rebuilt here from those pieces.
 *
 * Tolerances (TOL below): the BERT goldens' READMEs suggest none, so each bound is the error measured here
 * times about 3 (2.8–4.8, rounded up to one digit). Measured as max|Δ| / max(floor, max|ref|) over every sequence,
 * class choice and rule set (backend wasm, the default here; the cpu backend in brackets). The tiny models are
 * well conditioned, LRP included (all ≤ 1e-4), so no Pearson fallback.
 */
const TOL = {
  /** Logits, floor 1: tiny_a 7.95e-7 (2.7e-7), also with renamed weights and in a padded batch; ERASER 3.7e-7. */
  logits: 2.5e-6,
  /** Hidden states, floor 1: 5.4e-7 (3.8e-7). */
  hidden: 2e-6,
  /** Pooled output, floor 1: 1.6e-6 (6.6e-7). */
  pooled: 5e-6,
  /** Attention probabilities, floor 1: 3.6e-7 (3.0e-7). */
  probs: 1e-6,
  /** ∂logit/∂P of every layer: 1.5e-6 (9.3e-7). */
  attnGrads: 5e-6,
  /** attn_cam of every layer (both rule sets): 7.1e-5 (4.4e-5). */
  attnCam: 2e-4,
  /** The head average generate_LRP feeds to the rollout: 7.1e-5 (4.4e-5). */
  headAvg: 2e-4,
  /** Full LRP (generate_full_lrp): 9.1e-5 (5.6e-5). */
  fullLrp: 3e-4,
  /** generate_LRP, start layer 0 and 1: 5.2e-5 (4.2e-5). */
  generateLrp: 1.5e-4,
  /** Partial LRP (generate_LRP_last_layer): 2.6e-5 (8.7e-6). */
  partialLrp: 1e-4,
  /** The partial-LRP attn_cam the reference stored: 3.2e-5 (1.1e-5). */
  partialCam: 1e-4,
  /** GradCAM map (generate_attn_gradcam): 1.8e-6 (7.9e-7). */
  gradcam: 5e-6,
  /** The GradCAM gradient the reference stored: 9.1e-7 (5.0e-7). */
  gradcamGrad: 3e-6,
  /** Raw attention (last layer): 4.2e-7 (1.6e-7). */
  rawAttention: 1.5e-6,
  /** Rollout: 2.1e-7 (1.4e-7). */
  rollout: 6e-7,
  /** ERASER case1 12-layer model, generate_LRP from layer 11: 7.4e-6 (4.4e-6). */
  eraserGenerateLrp: 2.5e-5,
};

async function loadBert(dir: string[]): Promise<BertForSequenceClassification> {
  // BENCH_BACKEND: the backend to hold to the goldens (default auto).
  await initBackend((process.env.BENCH_BACKEND as BackendChoice | undefined) || 'auto');
  const cfg = readBertConfig(goldenPath(...dir, 'config.json'));
  const file = goldenPath(...dir, 'weights.safetensors');
  return new BertForSequenceClassification(cfg, bertWeightsFromStateDict(readSafetensors(file).tensors, cfg, file));
}

function ints(sd: StateDict, name: string): Int32Array {
  const t = sd.get(name);
  if (!t) throw new Error(`golden tensor '${name}' not found`);
  return Int32Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

// ---- §5.3 methods from the model's pieces (batch element 0; B = 1 here) ----

/** compute_rollout_attention of ExplanationGenerator.py: M = (A + I)/rowsum, J = M_last ⋯ M_start. */
function rollout(mats: tf.Tensor2D[]): tf.Tensor2D {
  const N = mats[0]!.shape[0];
  const norm = mats.map((a) => {
    const m = tf.add(a, tf.eye(N));
    return tf.div(m, tf.sum(m, -1, true)) as tf.Tensor2D;
  });
  return norm.slice(1).reduce((J, M) => tf.matMul(M, J), norm[0]!);
}

/** Row 0 of a [N, N] matrix with entry 0 replaced by `first(row)`. */
function row0(m: tf.Tensor2D, first: (row: Float32Array) => number): Float32Array {
  const row = tf.slice(m, [0, 0], [1, -1]).dataSync() as Float32Array;
  const out = row.slice();
  out[0] = first(row);
  return out;
}

const heads = (model: BertForSequenceClassification, t: tf.Tensor3D) =>
  tf.reshape(t, [model.config.num_attention_heads, t.shape[1], t.shape[2]]) as tf.Tensor3D;

/** Everything the methods need for one input, one class and one rule set. */
interface Pieces {
  trace: BertTrace;
  grads: tf.Tensor3D[];
  cams: tf.Tensor3D[];
  /** Relevance at the encoder input (only when propagated down to layer 0). */
  input?: tf.Tensor3D;
}

function pieces(
  model: BertForSequenceClassification,
  trace: BertTrace,
  cls: number,
  rules: RuleSetName,
  downTo = 0,
): Pieces {
  const seed = tf.oneHot([cls], model.numLabels).toFloat() as tf.Tensor2D;
  const grads = model.attentionGradients(trace, seed, downTo).attn as tf.Tensor3D[];
  const r = model.relprop(trace, seed, RULE_SETS[rules], downTo === 0 ? 'input' : downTo);
  return { trace, grads, cams: r.attnCam as tf.Tensor3D[], ...(r.input ? { input: r.input } : {}) };
}

function generateLRP(model: BertForSequenceClassification, p: Pieces, start: number): Float32Array {
  const mats: tf.Tensor2D[] = [];
  for (let l = start; l < model.depth; l++) {
    mats.push(tf.mean(tf.relu(tf.mul(heads(model, p.grads[l]!), heads(model, p.cams[l]!))), 0) as tf.Tensor2D);
  }
  return row0(rollout(mats), (row) => Math.min(...row));
}

const methods = {
  generate_LRP_last_layer: (model: BertForSequenceClassification, p: Pieces) =>
    row0(tf.mean(tf.relu(heads(model, p.cams[model.depth - 1]!)), 0) as tf.Tensor2D, () => 0),
  generate_full_lrp: (_model: BertForSequenceClassification, p: Pieces) => {
    const out = tf.sum(p.input!, 2).dataSync().slice() as Float32Array;
    out[0] = 0;
    return out;
  },
  generate_attn_gradcam: (model: BertForSequenceClassification, p: Pieces) => {
    const P = heads(model, p.trace.layers[model.depth - 1]!.P);
    const w = tf.mean(heads(model, p.grads[model.depth - 1]!), [1, 2], true);
    const cam = tf.relu(tf.mean(tf.mul(P, w), 0)) as tf.Tensor2D;
    const lo = tf.min(cam);
    return row0(tf.div(tf.sub(cam, lo), tf.sub(tf.max(cam), lo)) as tf.Tensor2D, () => 0);
  },
};

function attnLastLayer(model: BertForSequenceClassification, trace: BertTrace): Float32Array {
  return row0(tf.mean(heads(model, trace.layers[model.depth - 1]!.P), 0) as tf.Tensor2D, () => 0);
}

function rolloutMethod(model: BertForSequenceClassification, trace: BertTrace): Float32Array {
  return row0(rollout(trace.layers.map((l) => tf.mean(heads(model, l.P), 0) as tf.Tensor2D)), () => 0);
}

// ---- tiny_a: 2 layers, 4 heads, D = 32; seq1 has 3 padding positions ----

describe('BERT golden tiny_a', async () => {
  const model = await loadBert(['bert', 'tiny_a']);
  const meta = readJson<{ sequences: { name: string; predicted_class: number }[] }>('bert', 'tiny_a', 'meta.json');
  const g = readGoldenTensors('bert', 'tiny_a', 'outputs.safetensors');
  const L = model.depth;
  const MODELS: [string, RuleSetName][] = [
    ['ours', 'ours'],
    ['orig_lrp', 'lrp'],
  ];

  for (const seq of meta.sequences) {
    const s = seq.name;
    const ids = ints(g, `${s}.input_ids`);
    const mask = ints(g, `${s}.attention_mask`);
    const N = ids.length;
    const classOf = (t: string, logits: Float32Array) =>
      t === 'c0' ? 0 : t === 'c1' ? 1 : logits[1]! > logits[0]! ? 1 : 0;

    test(`${s}: logits, hidden states, pooled output, attention`, () => {
      tf.tidy(() => {
        const tr = model.forward(ids, mask, 1, N);
        const logits = tr.logits.dataSync() as Float32Array;
        assertClose(logits, goldenArray(g, `${s}.logits`), TOL.logits, 'logits', 1);
        assert.equal(classOf('pred', logits), seq.predicted_class);
        model.hiddenStates(tr).forEach((h, i) => {
          assertClose(h.dataSync(), goldenArray(g, `${s}.hidden_states.${i}`), TOL.hidden, `hidden_states.${i}`, 1);
        });
        assertClose(tr.pooled.dataSync(), goldenArray(g, `${s}.pooled_output`), TOL.pooled, 'pooled output', 1);
        for (let l = 0; l < L; l++) {
          const ref = goldenArray(g, `${s}.ours.generate_rollout.layer${l}.attn_probs`);
          assertClose(tr.layers[l]!.P.dataSync(), ref, TOL.probs, `attention probs of layer ${l}`, 1);
        }
        if (s === 'seq1') {
          // Padded keys get exactly zero attention (exp(−10000) underflows), as in the reference.
          const P = tr.layers[0]!.P.dataSync();
          for (let i = 0; i < P.length; i++) if (mask[i % N] === 0) assert.equal(P[i], 0);
        }
      });
    });

    for (const t of ['pred', 'c0', 'c1']) {
      test(`${s} / ${t}: attention gradients, attn_cam of every layer and full LRP (both rule sets)`, () => {
        tf.tidy(() => {
          const tr = model.forward(ids, mask, 1, N);
          const cls = classOf(t, tr.logits.dataSync() as Float32Array);
          for (const [m, rules] of MODELS) {
            const p = pieces(model, tr, cls, rules);
            for (let l = 0; l < L; l++) {
              const pre = `${s}.${m}.generate_LRP.${t}.layer${l}`;
              assertClose(
                p.grads[l]!.dataSync(),
                goldenArray(g, `${pre}.attn_grads`),
                TOL.attnGrads,
                `${m} ∂logit/∂P of layer ${l}`,
              );
              assertClose(
                p.cams[l]!.dataSync(),
                goldenArray(g, `${pre}.attn_cam`),
                TOL.attnCam,
                `${m} attn_cam of layer ${l}`,
              );
              const avg = tf.mean(tf.relu(tf.mul(heads(model, p.grads[l]!), heads(model, p.cams[l]!))), 0);
              assertClose(
                avg.dataSync(),
                goldenArray(g, `${pre}.derived_head_avg`),
                TOL.headAvg,
                `${m} head average of layer ${l}`,
              );
            }
            const full = methods.generate_full_lrp(model, p);
            assertClose(full, goldenArray(g, `${s}.${m}.generate_full_lrp.${t}`), TOL.fullLrp, `${m} full LRP`);
          }
        });
      });

      test(`${s} / ${t}: the §5.3 methods rebuilt from the pieces equal the reference's outputs`, () => {
        tf.tidy(() => {
          const tr = model.forward(ids, mask, 1, N);
          const cls = classOf(t, tr.logits.dataSync() as Float32Array);
          for (const [m, rules] of MODELS) {
            const p = pieces(model, tr, cls, rules);
            for (const start of [0, 1]) {
              const ref = goldenArray(g, `${s}.${m}.generate_LRP.start_layer${start}.${t}`);
              assertClose(generateLRP(model, p, start), ref, TOL.generateLrp, `${m} generate_LRP start_layer ${start}`);
            }
            for (const [name, fn] of Object.entries(methods)) {
              const tol = {
                generate_LRP_last_layer: TOL.partialLrp,
                generate_full_lrp: TOL.fullLrp,
                generate_attn_gradcam: TOL.gradcam,
              }[name]!;
              assertClose(fn(model, p), goldenArray(g, `${s}.${m}.${name}.${t}`), tol, `${m} ${name}`);
            }
            // The per-method intermediates the reference stored.
            assertClose(
              p.cams[L - 1]!.dataSync(),
              goldenArray(g, `${s}.${m}.generate_LRP_last_layer.${t}.last_layer.attn_cam`),
              TOL.partialCam,
              `${m} partial-LRP attn_cam`,
            );
            assertClose(
              p.grads[L - 1]!.dataSync(),
              goldenArray(g, `${s}.${m}.generate_attn_gradcam.${t}.last_layer.attn_grads`),
              TOL.gradcamGrad,
              `${m} GradCAM gradient`,
            );
          }
        });
      });
    }

    test(`${s}: class-agnostic methods (raw attention, rollout)`, () => {
      tf.tidy(() => {
        const tr = model.forward(ids, mask, 1, N);
        for (const [m] of MODELS) {
          assertClose(
            attnLastLayer(model, tr),
            goldenArray(g, `${s}.${m}.generate_attn_last_layer`),
            TOL.rawAttention,
            'raw attention',
          );
          assertClose(
            rolloutMethod(model, tr),
            goldenArray(g, `${s}.${m}.generate_rollout.start_layer0`),
            TOL.rollout,
            'rollout',
          );
        }
      });
    });
  }

  test('relprop stops at the requested layer; the ours rules conserve the total down to the input', () => {
    tf.tidy(() => {
      const ids = ints(g, 'seq0.input_ids');
      const tr = model.forward(ids, undefined, 1, ids.length);
      const seed = tf.oneHot([1], 2).toFloat() as tf.Tensor2D;
      const r = model.relprop(tr, seed, RULE_SETS.ours, 1);
      assert.equal(r.attnCam[0], undefined);
      assert.ok(r.attnCam[1]);
      assert.equal(r.input, undefined);
      const full = model.relprop(tr, seed, RULE_SETS.ours, 'input');
      // Measured |Σ − 1|: 2.4e-7 (two float32 ulps of 1; 0 on cpu). Bound 1e-6.
      assert.ok(Math.abs(tf.sum(full.input!).dataSync()[0]! - 1) < 1e-6, 'Σ relevance at the input ≈ 1');
      assert.throws(
        () => model.relprop(tr, seed, RULE_SETS.ours, 2),
        /layer 2 is out of range: the model has 2 layers/,
      );
    });
  });

  test('a batch of both sequences (padded to one length) gives the per-sequence logits and attention', () => {
    tf.tidy(() => {
      const a = ints(g, 'seq0.input_ids');
      const b = ints(g, 'seq1.input_ids');
      const N = b.length;
      const ids = new Int32Array(2 * N);
      const mask = new Int32Array(2 * N);
      ids.set(a, 0);
      mask.fill(1, 0, a.length);
      ids.set(b, N);
      mask.set(ints(g, 'seq1.attention_mask'), N);
      const tr = model.forward(ids, mask, 2, N);
      const logits = tr.logits.dataSync();
      assertClose(logits.slice(0, 2), goldenArray(g, 'seq0.logits'), TOL.logits, 'seq0 logits in a padded batch', 1);
      assertClose(logits.slice(2), goldenArray(g, 'seq1.logits'), TOL.logits, 'seq1 logits in a batch', 1);
    });
  });

  test('input checks', () => {
    const ids = ints(g, 'seq0.input_ids');
    assert.throws(() => model.forward(ids, undefined, 2, ids.length), /input_ids has 9 entries, expected 2×9 = 18/);
    assert.throws(() => model.forward(Int32Array.from([1, 64]), undefined, 1, 2), /input_ids\[1\] = 64 is outside/);
    assert.throws(
      () => model.forward(new Int32Array(65), undefined, 1, 65),
      /sequence length 65 exceeds the model's max_position_embeddings 64/,
    );
  });
});

// ---- config and weights files ----

describe('BERT config and weights', () => {
  const raw = readJson('bert', 'tiny_a', 'config.json');

  test('config: HF defaults and fields', () => {
    const c = readBertConfig(goldenPath('bert', 'tiny_a', 'config.json'));
    assert.equal(c.hidden_size, 32);
    assert.equal(c.num_hidden_layers, 2);
    assert.equal(c.layer_norm_eps, 1e-12);
    assert.equal(c.num_labels, 2);
    const { layer_norm_eps: _e, num_labels: _n, hidden_act: _a, ...minimal } = raw;
    const d = parseBertConfig(minimal, 'x.json');
    assert.equal(d.layer_norm_eps, 1e-12);
    assert.equal(d.num_labels, 2);
    assert.equal(d.hidden_act, 'gelu');
    const labelled = parseBertConfig({ ...minimal, id2label: { 0: 'NEG', 1: 'POS', 2: 'MIXED' } }, 'x.json');
    assert.equal(labelled.num_labels, 3);
    assert.deepEqual(labelled.labels, ['NEG', 'POS', 'MIXED']);
  });

  test('config: one clear error per bad file', () => {
    const bad = (patch: Record<string, unknown>, re: RegExp) => {
      assert.throws(
        () => parseBertConfig({ ...raw, ...patch }, 'cfg.json'),
        (e: unknown) =>
          e instanceof FileFormatError && /^cfg\.json: invalid BERT config: /.test(e.message) && re.test(e.message),
      );
    };
    bad({ num_attention_heads: 5 }, /num_attention_heads 5 does not divide hidden_size 32/);
    bad(
      { hidden_size: undefined, vocab_size: 'x' },
      /field 'vocab_size' must be a number, found "x"; missing field 'hidden_size'/,
    );
    bad({ hidden_act: 'gelu_new' }, /hidden_act "gelu_new" is not supported/);
    bad({ hidden_act: 'relu' }, /hidden_act "relu" is not supported/);
    bad({ num_hidden_layers: 0 }, /num_hidden_layers must be a positive integer, found 0/);
    bad({ id2label: { 0: 'a', 1: 'b' }, num_labels: 3 }, /num_labels 3 disagrees with id2label, which has 2 entries/);
    bad({ id2label: { 0: 'a', 2: 'b' } }, /id2label keys must be the class indices 0 … 1/);
    bad({ model_type: 'roberta' }, /model_type 'roberta' is not supported/);
    bad({ layer_norm_eps: 0 }, /layer_norm_eps must be positive/);
    assert.throws(() => parseBertConfig([], 'cfg.json'), /cfg\.json: expected a JSON object/);
  });

  test('weights: strict keys and shapes in one message; position_ids buffer and gamma/beta names accepted', () => {
    const cfg = readBertConfig(goldenPath('bert', 'tiny_a', 'config.json'));
    const file = goldenPath('bert', 'tiny_a', 'weights.safetensors');
    const sd = readSafetensors(file).tensors;
    assert.deepEqual([...sd.keys()].sort(), [...expectedBertKeys(cfg).keys()].sort());
    const withBuffer: StateDict = new Map(sd);
    withBuffer.set('bert.embeddings.position_ids', { shape: [1, 64], data: new BigInt64Array(64) });
    const old: StateDict = new Map(
      [...withBuffer].map(([k, v]) => [
        k.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'),
        v,
      ]),
    );
    tf.tidy(() => {
      for (const variant of [withBuffer, old]) {
        const m = new BertForSequenceClassification(cfg, bertWeightsFromStateDict(variant, cfg, file));
        const ids = ints(readGoldenTensors('bert', 'tiny_a', 'outputs.safetensors'), 'seq0.input_ids');
        assertClose(
          m.forward(ids, undefined, 1, ids.length).logits.dataSync(),
          readLogits('seq0'),
          TOL.logits,
          'logits',
          1,
        );
      }
    });
    const broken: StateDict = new Map(sd);
    broken.delete('classifier.bias');
    broken.set('bert.pooler.dense.weight', { shape: [32, 31], data: new Float32Array(32 * 31) });
    broken.set('cls.predictions.bias', { shape: [64], data: new Float32Array(64) });
    assert.throws(
      () => bertWeightsFromStateDict(broken, cfg, 'w.safetensors'),
      (e: unknown) =>
        e instanceof FileFormatError &&
        e.message.startsWith("w.safetensors: weights do not fit BERT model 'bert' (D=32, layers=2, heads=4") &&
        e.message.includes("missing key 'classifier.bias' (expected shape (2))") &&
        e.message.includes("key 'bert.pooler.dense.weight' has shape (32, 31), the config expects (32, 32)") &&
        e.message.includes("unexpected key 'cls.predictions.bias' (shape (64))"),
    );
    const bare: StateDict = new Map([...sd].filter(([k]) => k.startsWith('bert.')).map(([k, v]) => [k.slice(5), v]));
    assert.throws(() => bertWeightsFromStateDict(bare, cfg, 'w.bin'), /looks like a bare BertModel checkpoint/);
    const twelve = { ...raw, num_hidden_layers: 12 };
    assert.throws(
      () => bertWeightsFromStateDict(sd, parseBertConfig(twelve, 'c'), 'w.bin'),
      /missing key 'bert\.encoder\.layer\.2\.attention\.self\.query\.weight'.*… and \d+ more/,
    );
  });

  function readLogits(s: string): Float32Array {
    return goldenArray(readGoldenTensors('bert', 'tiny_a', 'outputs.safetensors'), `${s}.logits`) as Float32Array;
  }
});

// ---- ERASER case1: the pipeline's 12-layer model, generate_LRP with start_layer = 11 on the gold class ----

describe('BERT golden ERASER case1 pipeline model', async () => {
  const model = await loadBert(['eraser', 'case1', 'pipeline_model']);
  const trace = readGoldenTensors('eraser', 'case1', 'pipeline_trace.safetensors');
  const docs = readFileSync(goldenPath('eraser', 'case1', 'data', 'test.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { annotation_id: string; classification: 'NEG' | 'POS' });
  assert.equal(docs.length, 3);

  for (const doc of docs) {
    test(`${doc.annotation_id}: logits and generate_LRP (start_layer 11) for the gold and the other class`, () => {
      tf.tidy(() => {
        const ids = ints(trace, `${doc.annotation_id}.input_ids`);
        const tr = model.forward(ids, undefined, 1, ids.length);
        assertClose(tr.logits.dataSync(), goldenArray(trace, `${doc.annotation_id}.logits`), TOL.logits, 'logits', 1);
        const target = doc.classification === 'POS' ? 1 : 0;
        for (const [cls, name] of [
          [target, 'target'],
          [1 - target, 'false_class'],
        ] as const) {
          const p = pieces(model, tr, cls, 'ours', model.depth - 1);
          const ref = goldenArray(trace, `${doc.annotation_id}.generate_LRP.${name}`);
          assertClose(generateLRP(model, p, model.depth - 1), ref, TOL.eraserGenerateLrp, `generate_LRP.${name}`);
        }
      });
    });
  }
});
