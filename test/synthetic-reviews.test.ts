import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { documentWords, loadEraserData } from '../src/datasets/eraser.js';
import { generateReview, generateReviews, reviewDocid } from '../src/datasets/synthetic-reviews.js';
import { EMBEDDED } from '../src/embedded.js';
import { initBackend } from '../src/engine/backend.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { BertForSequenceClassification } from '../src/models/bert.js';
import { readBertConfig } from '../src/models/bert-config.js';
import { bertWeightsFromStateDict } from '../src/models/bert-weights.js';
import { basicTokenize, WordPieceTokenizer } from '../src/text/wordpiece.js';

describe('synthetic movie reviews', () => {
  const reviews = generateReviews(60);

  test('are a pure function of (seed, index)', () => {
    assert.deepEqual(generateReviews(60), reviews);
    assert.deepEqual(generateReview(17), reviews[17]);
    assert.deepEqual(generateReviews(3, { first: 10 }), reviews.slice(10, 13));
    assert.notEqual(generateReview(17, { seed: 2 }).text, reviews[17]!.text);
  });

  test('have ERASER docids, balanced labels and lengths within the bounds', () => {
    reviews.forEach((r, i) => {
      assert.equal(r.classification, i % 2 === 0 ? 'NEG' : 'POS');
      assert.equal(r.docid, reviewDocid(r.classification, i));
      assert.match(r.docid, /^(negR|posR)_\d{3}\.txt$/);
      const n = documentWords(r.text).length;
      assert.ok(n >= 100 && n <= 240, `${r.docid}: ${n} tokens`);
      assert.ok(basicTokenize(r.text).length <= 240, `${r.docid}: too many wordpieces`);
      assert.ok(r.evidences.length >= 2 && r.evidences.length <= 4, `${r.docid}: ${r.evidences.length} evidences`);
      assert.ok(r.text.endsWith('\n') && !r.text.includes('\n\n') && !r.text.includes('  '));
      assert.equal(r.text, r.text.toLowerCase());
    });
    assert.equal(generateReview(3, { label: 'NEG' }).docid, 'negR_003.txt');
  });

  test('evidences index the whitespace tokens and the lines of the document', () => {
    for (const r of reviews) {
      const tokens = documentWords(r.text);
      const lines = r.text.split('\n').slice(0, -1);
      const lineStart: number[] = [];
      let offset = 0;
      for (const line of lines) {
        lineStart.push(offset);
        offset += documentWords(line).length;
      }
      let previousEnd = 0;
      for (const e of r.evidences) {
        assert.ok(e.start_token >= previousEnd && e.end_token > e.start_token, `${r.docid}: span order`);
        assert.equal(tokens.slice(e.start_token, e.end_token).join(' '), e.text, r.docid);
        assert.equal(e.end_sentence, e.start_sentence + 1);
        const s = e.start_sentence;
        assert.ok(e.start_token >= lineStart[s]! && e.end_token <= lineStart[s]! + documentWords(lines[s]!).length);
        previousEnd = e.end_token;
      }
    }
  });
});

const DATA = join(EMBEDDED.root, 'eraser', 'data');
const MODEL = join(EMBEDDED.root, 'eraser', 'model');
const shipped = existsSync(join(DATA, 'test.jsonl')) && existsSync(join(MODEL, 'weights.safetensors'));

describe('embedded ERASER default', { skip: shipped ? false : 'embedded/eraser not generated' }, () => {
  test('the data loads, and its documents are the generator output', () => {
    const sizes: Record<string, number> = {};
    for (const split of ['train', 'val', 'test'] as const) {
      const { annotations, documents } = loadEraserData(DATA, split);
      sizes[split] = annotations.length;
      for (const a of annotations) {
        assert.equal(a.query, 'What is the sentiment of this review?');
        assert.equal(a.query_type, null);
        assert.ok(a.evidences.every((g) => g.length === 1 && g[0]!.docid === a.annotation_id));
      }
      if (split === 'test') {
        for (const a of annotations) {
          const r = generateReview(Number(/_(\d+)\.txt$/.exec(a.annotation_id)![1]));
          assert.equal(r.docid, a.annotation_id);
          assert.equal(documents.texts.get(a.annotation_id), r.text);
          assert.deepEqual(
            a.evidences.map((g) => g[0]!.text),
            r.evidences.map((e) => e.text),
          );
        }
      }
    }
    assert.deepEqual(sizes, { train: 400, val: 40, test: 40 });
  });

  test('the model classifies the test split (accuracy ≥ 0.9), every document without [UNK] or truncation', async () => {
    await initBackend('auto');
    const cfg = readBertConfig(join(MODEL, 'config.json'));
    assert.deepEqual(cfg.labels, ['NEG', 'POS']);
    const file = join(MODEL, 'weights.safetensors');
    const model = new BertForSequenceClassification(
      cfg,
      bertWeightsFromStateDict(readSafetensors(file).tensors, cfg, file),
    );
    const tokenizer = WordPieceTokenizer.fromFile(join(MODEL, 'vocab.txt'));
    assert.equal(tokenizer.vocabSize, cfg.vocab_size);
    const { annotations, documents } = loadEraserData(DATA, 'test');
    let correct = 0;
    for (const a of annotations) {
      const enc = tokenizer.encode(documents.texts.get(a.annotation_id)!, { maxLength: cfg.max_position_embeddings });
      assert.ok(!enc.truncated && !enc.tokens.includes('[UNK]'), a.annotation_id);
      const pred = tf.tidy(() => {
        const trace = model.forward(enc.inputIds, enc.attentionMask, 1, enc.inputIds.length);
        return tf.argMax(trace.logits, 1).dataSync()[0]!;
      });
      if (cfg.labels![pred] === a.classification) correct++;
    }
    const accuracy = correct / annotations.length;
    // A floor on quality, not an error bound: at most 4 of the 40 documents misclassified. Measured 40/40 (wasm).
    assert.ok(accuracy >= 0.9, `test accuracy ${accuracy}`);
  });
});
