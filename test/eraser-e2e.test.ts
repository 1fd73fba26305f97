import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
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
import { goldenPath, readJson } from './helpers/golden.js';

const CASE = goldenPath('eraser', 'case1');

/** Every number of two score objects, to 1e-12 (the same keys and shapes). */
function assertClose(a: unknown, b: unknown, path = ''): void {
  if (typeof b === 'number') {
    assert.equal(typeof a, 'number', path);
    assert.ok(Math.abs((a as number) - b) <= 1e-12, `${path}: ${a} vs ${b}`);
  } else if (Array.isArray(b)) {
    assert.ok(Array.isArray(a) && a.length === b.length, path);
    for (const [i, x] of b.entries()) assertClose((a as unknown[])[i], x, `${path}[${i}]`);
  } else if (b && typeof b === 'object') {
    assert.deepEqual(Object.keys(a as object).sort(), Object.keys(b).sort(), path);
    for (const [k, v] of Object.entries(b)) assertClose((a as Record<string, unknown>)[k], v, `${path}.${k}`);
  } else assert.equal(a, b, path);
}

describe('bench eraser end to end against the official pipeline and metrics.py (eraser/case1)', () => {
  test('identifier_results_<k>.json byte-identical and every metrics.py number, for every k', () => {
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
      assertClose(
        JSON.parse(readFileSync(join(out, 'transformer_attribution', `scores_${k}.json`), 'utf8')),
        golden[String(k)]!.scores,
        `k=${k}`,
      );
    }
    for (const f of ['summary.json', 'token_f1.csv', 'token_f1.svg', 'token_f1.png']) readFileSync(join(out, f));
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
