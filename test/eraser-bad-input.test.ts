import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bench } from './helpers/cli.js';
import { goldenPath } from './helpers/golden.js';

// The bad inputs through the command line: each one clear line naming the file, non-zero exit.
test('bench eraser: a missing document, an empty document, an evidence out of range, a vocab without [CLS]', () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-eraser-bad-'));
  const model = join(root, 'model');
  cpSync(goldenPath('eraser', 'case1', 'pipeline_model'), model, { recursive: true });
  const fresh = (name: string) => {
    const d = join(root, name);
    cpSync(goldenPath('eraser', 'case1', 'data'), d, { recursive: true });
    return d;
  };
  const missing = fresh('missing');
  rmSync(join(missing, 'docs', 'negR_904.txt'));
  const empty = fresh('empty');
  writeFileSync(join(empty, 'docs', 'negR_904.txt'), '\n');
  const range = fresh('range');
  const lines = readFileSync(join(range, 'test.jsonl'), 'utf8').trim().split('\n');
  const first = JSON.parse(lines[0]!);
  first.evidences[0][0].end_token = 100000;
  lines[0] = JSON.stringify(first);
  writeFileSync(join(range, 'test.jsonl'), `${lines.join('\n')}\n`);
  const badVocab = join(root, 'model-bad-vocab');
  cpSync(model, badVocab, { recursive: true });
  writeFileSync(
    join(badVocab, 'vocab.txt'),
    readFileSync(join(model, 'vocab.txt'), 'utf8').replace('[CLS]\n', '[XXX]\n'),
  );
  const cases: [string[], RegExp][] = [
    [['--data-dir', missing, '--model-dir', model], /negR_904\.txt/],
    [['--data-dir', empty, '--model-dir', model], /negR_904\.txt: .*empty/i],
    [['--data-dir', range, '--model-dir', model], /test\.jsonl.*100000/],
    [['--data-dir', fresh('ok'), '--model-dir', badVocab], /vocab\.txt: .*\[CLS\]/],
  ];
  for (const [args, pattern] of cases) {
    const r = bench(['eraser', ...args, '--out', join(root, 'out'), '--quiet']);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, /bench: error: /);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
