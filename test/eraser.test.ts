import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  checkEvidenceSpans,
  documentWords,
  type EraserAnnotation,
  evidenceDocids,
  loadDocuments,
  loadEraserData,
  loadEraserSplit,
} from '../src/datasets/eraser.js';
import { FileFormatError, type StateDict } from '../src/formats/host-tensor.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import {
  hardRationalesForK,
  identifierResultsLine,
  numpyArgsort,
  numpyIntArrayStr,
  PIPELINE_KS,
  pyFloatRepr,
  pyJsonString,
  readResultsJsonl,
  scoreHardRationales,
  scoresPerWord,
  topkWords,
  verifyResults,
} from '../src/metrics/eraser.js';
import { WordPieceTokenizer } from '../src/text/wordpiece.js';
import { assertNestedClose } from './helpers/compare.js';
import { goldenPath, readJson } from './helpers/golden.js';

const CASE = ['eraser', 'case1'];
const dataDir = goldenPath(...CASE, 'data');
const tokenizer = WordPieceTokenizer.fromFile(goldenPath(...CASE, 'pipeline_model', 'vocab.txt'));
const params = readJson<{ max_length: number; evidence_classifier: { classes: string[] } }>(
  ...CASE,
  'pipeline_model',
  'model_params.json',
);
const trace: StateDict = readSafetensors(goldenPath(...CASE, 'pipeline_trace.safetensors'), { keepF64: true }).tensors;
const { annotations: testAnns, documents } = loadEraserData(dataDir, 'test', {
  classes: params.evidence_classifier.classes,
});

interface MetaDoc {
  docid: string;
  wordpieces: string[];
  truncated: boolean;
  n_words_scored: number;
}
const meta = readJson<{ test_documents: MetaDoc[]; ks: number[] }>(...CASE, 'meta.json');

function tensor(name: string): ArrayLike<number> {
  const t = trace.get(name);
  if (!t) throw new Error(`golden tensor '${name}' not found`);
  const d = t.data;
  return d instanceof BigInt64Array ? Array.from(d, Number) : (d as ArrayLike<number>);
}

function docText(docid: string): string {
  const t = documents.texts.get(docid);
  if (t === undefined) throw new Error(`document ${docid} not loaded`);
  return t;
}

/** The pipeline's word scores of a test doc, from the golden clamped cam. */
function goldenWordScores(docid: string): Float32Array {
  return scoresPerWord(
    documentWords(docText(docid)),
    tokenizer,
    tensor(`${docid}.input_ids`),
    tensor(`${docid}.cam_target_clamped`),
    {
      document: docid,
    },
  );
}

function assertFileError(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('WordPiece tokenizer', () => {
  test('encodes every golden test document exactly like the pipeline (input_ids, tokens, truncation)', () => {
    assert.equal(meta.test_documents.length, testAnns.length);
    for (const d of meta.test_documents) {
      const enc = tokenizer.encode(docText(d.docid), { maxLength: params.max_length });
      assert.deepEqual(Array.from(enc.inputIds), Array.from(tensor(`${d.docid}.input_ids`)), d.docid);
      assert.deepEqual(enc.tokens, d.wordpieces, d.docid);
      assert.equal(enc.truncated, d.truncated, d.docid);
      assert.ok(enc.attentionMask.every((x) => x === 1));
      assert.deepEqual(tokenizer.convertIdsToTokens(enc.inputIds), d.wordpieces);
    }
  });

  const small = new WordPieceTokenizer(
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'cafe', 'don', "'", 't', 'un', '##aff', '##able', 'hello'].concat([
      'a',
      '##a',
      '中',
      '国',
      'world',
      '.',
      'naive',
      '##s',
    ]),
    'small-vocab',
  );

  test('hand-made cases: accents, punctuation, [UNK] words, CJK, cleaning, special tokens', () => {
    assert.deepEqual(small.tokenize('Café'), ['cafe']);
    assert.deepEqual(small.tokenize('NAÏVE'), ['naive']);
    assert.deepEqual(small.tokenize("don't"), ['don', "'", 't']);
    assert.deepEqual(small.tokenize('unaffable'), ['un', '##aff', '##able']);
    assert.deepEqual(small.tokenize('a'.repeat(100)), ['a', ...Array(99).fill('##a')]);
    assert.deepEqual(small.tokenize('a'.repeat(101)), ['[UNK]']); // longer than 100 characters
    assert.deepEqual(small.tokenize('xyz hello'), ['[UNK]', 'hello']); // no vocab piece at all
    assert.deepEqual(small.tokenize('unaffx'), ['[UNK]']); // partly matchable: one [UNK] for the word
    assert.deepEqual(small.tokenize('hello中国world'), ['hello', '中', '国', 'world']);
    assert.deepEqual(small.tokenize('hello\u0000\u200b\tworld\u00a0.\r\n'), ['hello', 'world', '.']);
    assert.deepEqual(small.tokenize('hello [SEP] world[MASK]'), ['hello', '[SEP]', 'world', '[MASK]']);
    assert.deepEqual(small.tokenize(''), []);
  });

  test('encode truncates at the end to maxLength including [CLS]/[SEP]', () => {
    const enc = small.encode('hello world hello world', { maxLength: 4 });
    assert.deepEqual(enc.tokens, ['[CLS]', 'hello', 'world', '[SEP]']);
    assert.deepEqual(Array.from(enc.inputIds), [2, 12, 17, 3]);
    assert.equal(enc.truncated, true);
    const full = small.encode('hello world', { maxLength: 4 });
    assert.equal(full.truncated, false);
    assert.deepEqual(full.tokens, ['[CLS]', 'hello', 'world', '[SEP]']);
    assert.throws(() => small.encode('hello world hello', { maxLength: 4, truncation: false }), RangeError);
    assert.equal(small.tokenId('nope'), small.unkId);
    assert.deepEqual(small.convertIdsToTokens([0, 999]), ['[PAD]', '[UNK]']);
  });
});

describe('pipeline word scores and top-k results files', () => {
  test('scoresPerWord reproduces scores_per_word exactly (float32)', () => {
    for (const d of meta.test_documents) {
      const got = goldenWordScores(d.docid);
      const want = tensor(`${d.docid}.scores_per_word`);
      assert.equal(got.length, d.n_words_scored, d.docid);
      assert.deepEqual(Array.from(got), Array.from(want), d.docid);
    }
  });

  test('identifier_results_<k>.json are byte-identical for every k', () => {
    assert.deepEqual(meta.ks, [...PIPELINE_KS]);
    const lines = new Map<number, string[]>(PIPELINE_KS.map((k) => [k, []]));
    for (const ann of testAnns) {
      const docid = ann.evidences[0]![0]!.docid;
      const perK = hardRationalesForK(goldenWordScores(docid), PIPELINE_KS, { document: docid });
      for (const k of PIPELINE_KS) lines.get(k)!.push(identifierResultsLine(docid, perK.get(k)!));
    }
    for (const k of PIPELINE_KS) {
      const want = readFileSync(goldenPath(...CASE, 'pipeline_results', `identifier_results_${k}.json`), 'utf8');
      assert.equal(`${lines.get(k)!.join('\n')}\n`, want, `k = ${k}`);
    }
  });

  test('accumulated (Q25) and per-k lists are the same sets here; topk order and ties', () => {
    const scores = goldenWordScores(testAnns[0]!.evidences[0]![0]!.docid);
    const acc = hardRationalesForK(scores);
    const fresh = hardRationalesForK(scores, PIPELINE_KS, { accumulate: false });
    for (const k of PIPELINE_KS) {
      const set = (xs: { start_token: number }[]) => [...new Set(xs.map((x) => x.start_token))].sort((a, b) => a - b);
      assert.equal(fresh.get(k)!.length, k);
      assert.deepEqual(set(acc.get(k)!), set(fresh.get(k)!));
    }
    assert.deepEqual(topkWords([0.5, 1, 0.5, 2, 0.5], 3), [3, 1, 0]); // ties: index ascending
    assert.throws(() => hardRationalesForK([1, 2, 3], [5], { document: 'doc' }), /doc: top-5 needs 5 scored words/);
    assert.equal(
      identifierResultsLine('d\u00e9"', []),
      String.raw`{"annotation_id": "d\u00e9\"", "rationales": [{"docid": "d\u00e9\"", "hard_rationale_predictions": []}]}`,
    );
    assert.equal(pyJsonString('a\nb\u007f'), String.raw`"a\nb\u007f"`);
  });

  test('a word that does not line up with its wordpieces is an error naming the document and word', () => {
    const words = ['hello', 'qqq', 'world', 'hello'];
    const vocab = new WordPieceTokenizer(['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'hello', 'world'], 'v');
    const enc = vocab.encode(words.join(' '), { maxLength: 16 });
    const cam = new Float32Array(enc.inputIds.length).fill(1);
    assertFileError(
      () => scoresPerWord(words, vocab, enc.inputIds, cam, { document: 'docs/x.txt' }),
      'docs/x.txt',
      /word 1 'qqq'.*\[UNK\]/,
    );
    // Like the reference, only the last scored word goes unchecked.
    const last = ['hello', 'world', 'qqq'];
    const enc2 = vocab.encode(last.join(' '), { maxLength: 16 });
    assert.deepEqual(Array.from(scoresPerWord(last, vocab, enc2.inputIds, Float32Array.from([9, 1, 2, 3, 9]))), [1, 2]);
  });
});

describe('metrics.py scoring of hard rationales', () => {
  const G = readJson<Record<string, { scores: unknown; printed_lines: string[] }>>(
    ...CASE,
    'metrics_pipeline_results.json',
  );
  const docLengths = new Map([...documents.texts].map(([d, t]) => [d, documentWords(t).length]));

  test('every k of the pipeline results: scores ≤ 1e-12 and the printed lines exactly', () => {
    assert.deepEqual(
      Object.keys(G)
        .map(Number)
        .sort((a, b) => a - b),
      [...PIPELINE_KS],
    );
    for (const k of PIPELINE_KS) {
      const file = goldenPath(...CASE, 'pipeline_results', `identifier_results_${k}.json`);
      const results = readResultsJsonl(file);
      verifyResults(results, docLengths, file);
      const r = scoreHardRationales(testAnns, results, { iouThresholds: [0.5] });
      // golden/eraser/README.md: compare floats with ~1e-12 (last-ulp differences under another hash seed).
      // Measured max|Δ| 0 over every score of every k.
      assertNestedClose(r.scores, G[String(k)]!.scores, 1e-12, `k=${k}`);
      assert.deepEqual(r.printedLines, G[String(k)]!.printed_lines, `k=${k}`);
    }
  });

  test('the hand-made results (multi-token spans)', () => {
    const want = readJson<{ scores: unknown; printed_lines: string[] }>(...CASE, 'metrics_handmade_results.json');
    const file = goldenPath(...CASE, 'handmade_results.jsonl');
    const results = readResultsJsonl(file);
    verifyResults(results, docLengths, file);
    const r = scoreHardRationales(testAnns, results);
    // golden/eraser/README.md's ~1e-12, as above; measured max|Δ| 0.
    assertNestedClose(r.scores, want.scores, 1e-12, 'handmade');
    assert.deepEqual(r.printedLines, want.printed_lines);
  });

  test('Python/numpy printing helpers', () => {
    assert.equal(
      numpyIntArrayStr(numpyArgsort(Array.from({ length: 30 }, (_, i) => i)).reverse()),
      '[29 28 27 26 25 24 23 22 21 20 19 18 17 16 15 14 13 12 11 10  9  8  7  6\n  5  4  3  2  1  0]',
    );
    assert.equal(numpyIntArrayStr(Array.from({ length: 1200 }, (_, i) => i)), '[   0    1    2 ... 1197 1198 1199]');
    const reprs = [0.1, 1e-5, 0.0001, 1e16, 1e15, 123456789.125, 2 / 3, 5e-324, 0].map(pyFloatRepr);
    assert.deepEqual(reprs, [
      '0.1',
      '1e-05',
      '0.0001',
      '1e+16',
      '1000000000000000.0',
      '123456789.125',
      '0.6666666666666666',
      '5e-324',
      '0.0',
    ]);
    assert.deepEqual(numpyArgsort([0, 0, 0]), [0, 1, 2]);
  });
});

describe('bad inputs are FileFormatErrors naming the file', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'eraser-test-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  let n = 0;
  function copyData(): string {
    const d = join(tmp, `data${n++}`);
    cpSync(dataDir, d, { recursive: true });
    return d;
  }

  test('a docid missing from docs/', () => {
    const d = copyData();
    rmSync(join(d, 'docs', 'posR_905.txt'));
    assertFileError(
      () => loadEraserData(d, 'test'),
      join(d, 'docs', 'posR_905.txt'),
      /document 'posR_905.txt' not found/,
    );
  });

  test('an empty document', () => {
    const d = copyData();
    writeFileSync(join(d, 'docs', 'negR_904.txt'), ' \n\n');
    assertFileError(() => loadEraserData(d, 'test'), join(d, 'docs', 'negR_904.txt'), /'negR_904.txt' is empty/);
  });

  test('an evidence span out of range of the document tokens', () => {
    const d = copyData();
    const file = join(d, 'test.jsonl');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"end_token": 154', '"end_token": 159');
    writeFileSync(file, lines.join('\n'));
    assertFileError(
      () => loadEraserData(d, 'test'),
      file,
      /line 2: annotation posR_905.txt: evidence \[0\]\[0\] token span \[152, 159\) is out of range of document 'posR_905.txt' \(158 tokens/,
    );
    // The same check on annotations built in code (no file behind them): valid spans pass; a span past the
    // end, one starting before 0 and one that ends before it starts are refused.
    const anns: EraserAnnotation[] = loadEraserSplit(dataDir, 'test');
    const docs = loadDocuments(dataDir, evidenceDocids(anns));
    checkEvidenceSpans(anns, docs);
    const ev = anns[1]!.evidences[0]![0]!;
    assert.equal(ev.docid, 'posR_905.txt');
    for (const [start, end] of [
      [152, 159],
      [-1, 3],
      [10, 9],
    ] as const) {
      const built: EraserAnnotation = structuredClone(anns[1]!);
      built.evidences[0]![0] = { ...ev, start_token: start, end_token: end };
      assert.throws(
        () => checkEvidenceSpans([anns[0]!, built], docs),
        (e: Error) =>
          e instanceof FileFormatError &&
          e.message.startsWith('<annotations>: annotation posR_905.txt: evidence [0][0] ') &&
          e.message.includes(`token span [${start}, ${end}) is out of range of document 'posR_905.txt' (158 tokens`),
      );
    }
  });

  test('a bad JSON line, a missing key, an unknown class', () => {
    const d = copyData();
    const file = join(d, 'test.jsonl');
    const good = readFileSync(file, 'utf8').split('\n');
    writeFileSync(file, [good[0], '{"annotation_id": "x",', good[2]].join('\n'));
    assertFileError(() => loadEraserSplit(d, 'test'), file, /line 2: not valid JSON/);
    writeFileSync(
      file,
      [good[0], good[1]!.replace('"query": "What is the sentiment of this review?", ', '')].join('\n'),
    );
    assertFileError(() => loadEraserSplit(d, 'test'), file, /line 2: missing required key 'query'/);
    writeFileSync(file, [good[0], good[1]!.replace('"query": ', '"quer": '), good[2]].join('\n'));
    assertFileError(() => loadEraserSplit(d, 'test'), file, /line 2: unexpected key 'quer'/);
    writeFileSync(file, [good[0], good[1]!.replace('"POS"', '"NEUTRAL"')].join('\n'));
    assertFileError(
      () => loadEraserSplit(d, 'test'),
      file,
      /line 2: annotation posR_905.txt: classification .*NEUTRAL/,
    );
  });

  test('a vocab without [CLS]', () => {
    const file = join(tmp, 'vocab.txt');
    writeFileSync(file, '[PAD]\n[UNK]\n[SEP]\nhello\n');
    assertFileError(() => WordPieceTokenizer.fromFile(file), file, /without \[CLS\]/);
  });

  test('results with overlapping or impossible spans', () => {
    const file = join(tmp, 'results.jsonl');
    const lens = new Map([['negR_904.txt', 96]]);
    writeFileSync(
      file,
      `${identifierResultsLine('negR_904.txt', [
        { start_token: 3, end_token: 6 },
        { start_token: 5, end_token: 7 },
      ])}\n`,
    );
    assertFileError(
      () => verifyResults(readResultsJsonl(file), lens),
      file,
      /line 1: .*\[3, 6\) and \[5, 7\).*overlap/,
    );
    writeFileSync(file, `${identifierResultsLine('negR_904.txt', [{ start_token: 95, end_token: 97 }])}\n`);
    assertFileError(() => verifyResults(readResultsJsonl(file), lens), file, /impossible span \[95, 97\).*96 tokens/);
    writeFileSync(file, '{"annotation_id": 3}\n');
    assertFileError(() => readResultsJsonl(file), file, /line 1: 'annotation_id' must be a string/);
  });
});
