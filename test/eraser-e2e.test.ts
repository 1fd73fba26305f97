import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { runEraser } from '../src/benchmarks/eraser.js';
import { loadEraserData } from '../src/datasets/eraser.js';
import { initBackend } from '../src/engine/backend.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { resolveMethods } from '../src/methods/registry.js';
import { PIPELINE_KS } from '../src/metrics/eraser.js';
import { BertForSequenceClassification } from '../src/models/bert.js';
import { readBertConfig } from '../src/models/bert-config.js';
import { bertWeightsFromStateDict } from '../src/models/bert-weights.js';
import { WordPieceTokenizer } from '../src/text/wordpiece.js';
import { bench } from './helpers/cli.js';
import { assertNestedClose } from './helpers/compare.js';
import { goldenPath, readJson } from './helpers/golden.js';

const CASE = goldenPath('eraser', 'case1');

describe('bench eraser end to end against the official pipeline and metrics.py (eraser/case1)', () => {
  test('identifier_results_<k>.json byte-identical and every metrics.py number, for every k', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-eraser-'));
    const r = bench([
      'eraser',
      '--data-dir',
      join(CASE, 'data'),
      '--model-dir',
      join(CASE, 'pipeline_model'),
      '--method',
      'transformer_attribution',
      '--out',
      out,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const golden = readJson<Record<string, { scores: unknown }>>('eraser', 'case1', 'metrics_pipeline_results.json');
    for (const k of PIPELINE_KS) {
      assert.equal(
        readFileSync(join(out, 'transformer_attribution', `identifier_results_${k}.json`), 'utf8'),
        readFileSync(join(CASE, 'pipeline_results', `identifier_results_${k}.json`), 'utf8'),
        `identifier_results_${k}.json`,
      );
      // metrics.py's numbers to 1e-12: both sides are float64 sums of the same counts, in another order.
      assertNestedClose(
        JSON.parse(readFileSync(join(out, 'transformer_attribution', `scores_${k}.json`), 'utf8')),
        golden[String(k)]!.scores,
        1e-12,
        `k=${k}`,
      );
    }
    // The summary, the CSV and the plot carry those same numbers.
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      documents: number;
      ks: number[];
      methods: Record<string, { tokenF1: Record<string, number>; scores: Record<string, unknown> }>;
    };
    assert.equal(summary.documents, 3);
    assert.deepEqual(summary.ks, [...PIPELINE_KS]);
    const ta = summary.methods.transformer_attribution!;
    const csv = readFileSync(join(out, 'token_f1.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'method,k,token_f1_macro,token_precision_macro,token_recall_macro,token_f1_micro');
    assert.equal(csv.length, 1 + PIPELINE_KS.length);
    for (const [row, k] of PIPELINE_KS.map((k, j) => [csv[j + 1]!.split(','), k] as const)) {
      const want = golden[String(k)]!.scores as {
        token_prf: { instance_macro: Record<'p' | 'r' | 'f1', number>; instance_micro: { f1: number } };
      };
      assert.deepEqual(summary.methods.transformer_attribution!.scores[String(k)], want, `summary scores, k=${k}`);
      assert.equal(ta.tokenF1[String(k)], want.token_prf.instance_macro.f1, `summary token-F1, k=${k}`);
      assert.deepEqual(
        row,
        [
          'transformer_attribution',
          String(k),
          ...[
            want.token_prf.instance_macro.f1,
            want.token_prf.instance_macro.p,
            want.token_prf.instance_macro.r,
            want.token_prf.instance_micro.f1,
          ].map(String),
        ],
        `token_f1.csv, k=${k}`,
      );
    }
    const svg = readFileSync(join(out, 'token_f1.svg'), 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /transformer_attribution/);
    assert.match(svg, /<\/svg>\s*$/);
    const png = await sharp(join(out, 'token_f1.png')).metadata();
    assert.equal(png.format, 'png');
    assert.ok(png.width! >= 300 && png.height! >= 150, `${png.width}×${png.height}`);
  });

  test('interrupted and resumed: the same files as an uninterrupted run, every method', async () => {
    await initBackend('auto');
    const dir = join(CASE, 'pipeline_model');
    const cfg = readBertConfig(join(dir, 'config.json'));
    const wf = join(dir, 'weights.safetensors');
    const model = new BertForSequenceClassification(
      cfg,
      bertWeightsFromStateDict(readSafetensors(wf).tensors, cfg, wf),
    );
    const { annotations, documents } = loadEraserData(join(CASE, 'data'), 'test');
    const base = {
      model,
      tokenizer: WordPieceTokenizer.fromFile(join(dir, 'vocab.txt')),
      annotations,
      documents,
      classes: ['NEG', 'POS'],
      methods: resolveMethods(['all']),
      maxLength: 128,
      identity: { command: 'eraser', test: 1 },
      quiet: true,
      log: () => {},
    };
    const root = mkdtempSync(join(tmpdir(), 'bench-eraser-resume-'));
    await runEraser({ ...base, outDir: join(root, 'full') });
    const cut = join(root, 'cut');
    await assert.rejects(
      runEraser({
        ...base,
        outDir: cut,
        onDocumentDone: (i) => {
          if (i === 1) throw new Error('simulated interruption');
        },
      }),
      /simulated interruption/,
    );
    await runEraser({ ...base, outDir: cut, resume: true });
    for (const m of base.methods) {
      for (const k of [5, 40, 80]) {
        const f = join(m.name, `identifier_results_${k}.json`);
        assert.equal(readFileSync(join(cut, f), 'utf8'), readFileSync(join(root, 'full', f), 'utf8'), f);
      }
    }
    assert.equal(
      readFileSync(join(cut, 'token_f1.csv'), 'utf8'),
      readFileSync(join(root, 'full', 'token_f1.csv'), 'utf8'),
    );
  });
});
