/**
 * Writes the embedded ERASER movie-review set (embedded/eraser/): synthetic reviews (src/datasets/synthetic-reviews.ts)
 * in the ERASER movies layout, and the WordPiece vocabulary of the embedded BERT, built from the corpus.
 *
 *   node --import tsx scripts/make-embedded-eraser.ts [--train 400] [--val 40] [--test 40] [--seed 1] [--out embedded/eraser]
 *
 * - `<out>/data/{train,val,test}.jsonl`: one annotation per line, keys sorted and separators as Python's json.dumps
 *   writes them (as in the ERASER release): {"annotation_id", "classification", "evidences": [[{"docid",
 *   "end_sentence", "end_token", "start_sentence", "start_token", "text"}], …], "query", "query_type": null};
 * - `<out>/data/docs/<docid>`: one sentence per line, whitespace-separated tokens;
 * - `<out>/model/vocab.txt`: [PAD] [UNK] [CLS] [SEP] [MASK], then '##ly', then every BERT basic-tokeniser piece of the
 *   corpus (most frequent first, ties alphabetical), except a few '-ly' adverbs that are left to WordPiece
 *   (stem + '##ly', so the word-score mapping meets continuation pieces). No word becomes [UNK].
 *
 * Reviews are numbered 0 … n−1 over train, val and test (in that order); the docid is negR_/posR_ plus the number.
 * Deterministic given its options. Each split is validated with loadEraserData, and every document is checked to fit
 * the model's 256-wordpiece window without [UNK].
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type EraserSplit, loadEraserData } from '../src/datasets/eraser.js';
import { generateReviews, REVIEW_QUERY, type SyntheticReview } from '../src/datasets/synthetic-reviews.js';
import { pyJsonString } from '../src/metrics/eraser.js';
import { basicTokenize, pythonSplit, WordPieceTokenizer } from '../src/text/wordpiece.js';

const args = await yargs(hideBin(process.argv))
  .option('train', { type: 'number', default: 400 })
  .option('val', { type: 'number', default: 40 })
  .option('test', { type: 'number', default: 40 })
  .option('seed', { type: 'number', default: 1 })
  .option('max-length', {
    type: 'number',
    default: 256,
    describe: 'wordpiece window of the model ([CLS] and [SEP] included); every document must fit',
  })
  .option('out', { type: 'string', default: 'embedded/eraser' })
  .strict()
  .parseAsync();

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
/** Adverbs that get no vocabulary entry of their own: WordPiece reads them as stem + '##ly'. */
const SPLIT_LY = ['beautifully', 'genuinely', 'thoroughly', 'wonderfully', 'hopelessly', 'painfully', 'poorly'];

/** Python json.dumps (default separators, ensure_ascii) of JSON values; object keys in the order given. */
function pyJson(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return pyJsonString(v);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`pyJson: only integers are written, got ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyJsonString(k)}: ${pyJson(x)}`)
      .join(', ')}}`;
  throw new Error(`pyJson: unsupported value ${String(v)}`);
}

function annotationLine(r: SyntheticReview): string {
  return pyJson({
    annotation_id: r.docid,
    classification: r.classification,
    evidences: r.evidences.map((e) => [
      {
        docid: r.docid,
        end_sentence: e.end_sentence,
        end_token: e.end_token,
        start_sentence: e.start_sentence,
        start_token: e.start_token,
        text: e.text,
      },
    ]),
    query: REVIEW_QUERY,
    query_type: null,
  });
}

const counts: Record<EraserSplit, number> = { train: args.train, val: args.val, test: args.test };
const splits: { split: EraserSplit; reviews: SyntheticReview[] }[] = [];
let first = 0;
for (const split of ['train', 'val', 'test'] as const) {
  splits.push({ split, reviews: generateReviews(counts[split], { seed: args.seed, first }) });
  first += counts[split];
}
const all = splits.flatMap((s) => s.reviews);

// Data.
const dataDir = join(args.out, 'data');
const docsDir = join(dataDir, 'docs');
rmSync(docsDir, { recursive: true, force: true });
mkdirSync(docsDir, { recursive: true });
for (const r of all) writeFileSync(join(docsDir, r.docid), r.text);
for (const { split, reviews } of splits)
  writeFileSync(join(dataDir, `${split}.jsonl`), reviews.map((r) => `${annotationLine(r)}\n`).join(''));

// Vocabulary: the basic-tokeniser pieces of the corpus, most frequent first.
const freq = new Map<string, number>();
for (const r of all) for (const w of basicTokenize(r.text)) freq.set(w, (freq.get(w) ?? 0) + 1);
const split = new Set(SPLIT_LY);
for (const w of SPLIT_LY) {
  if (!w.endsWith('ly')) throw new Error(`SPLIT_LY: '${w}' does not end in -ly`);
  if (!freq.has(w)) throw new Error(`SPLIT_LY: '${w}' does not occur in the corpus`);
  const stem = w.slice(0, -2);
  freq.set(stem, (freq.get(stem) ?? 0) + (freq.get(w) ?? 0));
}
const words = [...freq.entries()]
  .filter(([w]) => !split.has(w) && !SPECIALS.includes(w))
  .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  .map(([w]) => w);
const vocab = [...SPECIALS, '##ly', ...words];
const modelDir = join(args.out, 'model');
mkdirSync(modelDir, { recursive: true });
const vocabFile = join(modelDir, 'vocab.txt');
writeFileSync(vocabFile, `${vocab.join('\n')}\n`);

// Validation: the ERASER reader on every split; every document fits the window, no [UNK], ## pieces present.
const tokenizer = WordPieceTokenizer.fromFile(vocabFile);
let maxPieces = 0;
let continuation = 0;
for (const { split, reviews } of splits) {
  const { annotations, documents } = loadEraserData(dataDir, split);
  if (annotations.length !== reviews.length) throw new Error(`${split}: ${annotations.length} annotations read back`);
  annotations.forEach((a, i) => {
    const r = reviews[i]!;
    const text = documents.texts.get(a.annotation_id)!;
    const tokens = pythonSplit(text);
    for (const g of a.evidences)
      for (const e of g)
        if (tokens.slice(e.start_token, e.end_token).join(' ') !== e.text)
          throw new Error(`${r.docid}: evidence [${e.start_token}, ${e.end_token}) does not read '${e.text}'`);
    const enc = tokenizer.encode(text, { maxLength: args['max-length'] });
    if (enc.truncated) throw new Error(`${r.docid}: longer than ${args['max-length']} wordpieces`);
    if (enc.tokens.includes('[UNK]')) throw new Error(`${r.docid}: has [UNK] wordpieces`);
    maxPieces = Math.max(maxPieces, enc.tokens.length);
    continuation += enc.tokens.filter((t) => t.startsWith('##')).length;
  });
}
if (continuation === 0) throw new Error('no ## wordpiece in the corpus');

const lengths = all.map((r) => pythonSplit(r.text).length);
const pos = (rs: SyntheticReview[]) => rs.filter((r) => r.classification === 'POS').length;
for (const { split, reviews } of splits)
  console.log(`${split}: ${reviews.length} reviews (${pos(reviews)} POS, ${reviews.length - pos(reviews)} NEG)`);
console.log(
  `documents: ${Math.min(...lengths)}–${Math.max(...lengths)} tokens (mean ${(lengths.reduce((a, b) => a + b, 0) / lengths.length).toFixed(1)}), at most ${maxPieces} wordpieces with [CLS]/[SEP]; ${continuation} '##' pieces`,
);
console.log(`vocabulary: ${vocab.length} tokens → ${vocabFile}`);
console.log(`wrote ${dataDir}`);
