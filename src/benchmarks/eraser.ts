import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { documentWords, type EraserAnnotation, type EraserDocuments } from '../datasets/eraser.js';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import { explainTokens } from '../methods/explain.js';
import type { ExplanationMethod } from '../methods/types.js';
import {
  type HardRationale,
  type HardRationaleScores,
  hardRationalesForK,
  identifierResultsLine,
  PIPELINE_KS,
  type ResultInstance,
  scoreHardRationales,
  scoresPerWord,
} from '../metrics/eraser.js';
import type { BertForSequenceClassification } from '../models/bert.js';
import { writeLineChart } from '../reports/plots.js';
import type { WordPieceTokenizer } from '../text/wordpiece.js';
import { appendFileChecked, writeFileAtomic, writeFileChecked, writeJsonAtomic } from '../util/files.js';
import { stopPoint, watchStop } from '../util/interrupt.js';
import { Progress } from '../util/progress.js';
import { beginRun, type RunControl, type RunIdentity } from './run-dir.js';
import { type Shard, type ShardRun, shardIndices } from './shards.js';

/**
 * The ERASER movie-review benchmark (docs/benchmarks.md#eraser-movie-reviews): each annotation's document is
 * explained for its gold class by every requested method (one shared pass), word scores come from the word pieces
 * (max over a word's characters), the top k words for k = 5 … 80 become hard rationales, written as the pipeline's
 * `identifier_results_<k>.json` and scored as ERASER's metrics.py does (token-F1 = token-level instance-macro F1).
 *
 * Checkpointing: one JSON line per finished document in `documents.jsonl` (word scores of every method);
 * a resumed run keeps the complete lines and continues. All result files are derived from that file at
 * the end, so a resumed run writes the same bytes as an uninterrupted one.
 */
export interface EraserRunOptions extends RunControl {
  model: BertForSequenceClassification;
  tokenizer: WordPieceTokenizer;
  annotations: readonly EraserAnnotation[];
  documents: EraserDocuments;
  classes: readonly string[];
  methods: readonly ExplanationMethod[];
  maxLength: number;
  startLayer?: number;
  ks?: readonly number[];
  /** The pipeline's accumulating rationale lists (quirk Q25; default true, byte-identical files). */
  accumulate?: boolean;
  /** Explain only this shard's documents (i mod N = K); `bench merge` joins the shards. */
  shard?: Shard;
  onDocumentDone?: (index: number) => void;
}

interface DocumentRecord {
  index: number;
  annotation_id: string;
  docid: string;
  target: number;
  predicted: number;
  truncated: boolean;
  /** Per method: the raw per-token explanation (the reference's vector) and the word scores. */
  methods: Record<string, { tokens: number[]; words: number[] }>;
}

export interface EraserMethodSummary {
  /** token_prf.instance_macro.f1 per k (the paper's token-F1), in [0, 1]. */
  tokenF1: Record<string, number>;
  scores: Record<string, HardRationaleScores>;
}

export interface EraserSummary {
  benchmark: 'eraser';
  model: string;
  documents: number;
  accuracy: number;
  ks: number[];
  methods: Record<string, EraserMethodSummary>;
  /** The shard this run covers (null: every document, or merged shards). */
  shard: Shard | null;
}

export async function runEraser(opts: EraserRunOptions): Promise<EraserSummary> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { model, tokenizer, methods, outDir } = opts;
  const ks = opts.ks ?? PIPELINE_KS;
  const docsPath = join(outDir, 'documents.jsonl');
  const annotations = opts.annotations.slice(0, opts.limit ?? opts.annotations.length);
  let records: DocumentRecord[] = [];
  const todo = shardIndices(annotations.length, opts.shard);
  if (beginRun(outDir, opts.identity, opts.resume)) {
    records = resumeDocuments(
      docsPath,
      todo,
      methods.map((m) => m.name),
      log,
    );
    log(`resuming ${outDir} at document ${records.length}`);
  } else {
    writeFileChecked(docsPath, '');
  }
  const progress = new Progress('eraser', todo.length, records.length, opts.quiet);
  const unwatch = watchStop();
  try {
    for (let p = records.length; p < todo.length; p++) {
      const i = todo[p]!;
      const ann = annotations[i]!;
      const docid = ann.evidences[0]?.[0]?.docid ?? ann.annotation_id;
      const text = opts.documents.texts.get(docid)!;
      const enc = tokenizer.encode(text, { maxLength: opts.maxLength });
      const target = opts.classes.indexOf(ann.classification);
      // The pipeline explains the gold class, not the prediction (quirk Q26).
      const ex = await explainTokens(model, enc.inputIds, enc.attentionMask, 1, enc.inputIds.length, methods, {
        classes: target,
        startLayer: opts.startLayer,
      });
      const words = documentWords(text);
      const rec: DocumentRecord = {
        index: i,
        annotation_id: ann.annotation_id,
        docid,
        target,
        predicted: ex.predicted[0]!,
        truncated: enc.truncated,
        methods: {},
      };
      for (const m of ex.methods) {
        const cam = Float32Array.from(m.raw[0]!, (v) => Math.max(v, 0)); // cam.clamp(min=0)
        const wordScores = scoresPerWord(words, tokenizer, enc.inputIds, cam, {
          document: opts.documents.files.get(docid) ?? docid,
        });
        rec.methods[m.method] = { tokens: Array.from(m.raw[0]!), words: Array.from(wordScores) };
      }
      appendFileChecked(docsPath, recordLine(rec));
      records.push(rec);
      opts.onDocumentDone?.(i);
      progress.update(p + 1);
      await stopPoint(p + 1, todo.length);
    }
  } finally {
    unwatch();
  }
  progress.stop();
  return writeResults(
    {
      outDir,
      methods: methods.map((m) => m.name),
      annotations: opts.annotations,
      accumulate: opts.accumulate,
      model: model.config.name,
      shard: opts.shard,
    },
    records,
    ks,
  );
}

/**
 * The documents a resumed run keeps: the complete lines of documents.jsonl, in the run's order, each a record of
 * the expected document with every method's scores. A killed run may have left half a line (dropped quietly); a
 * damaged line (garbled, cut, out of order) is reported with a warning, and it and the lines after it are
 * recomputed. The file is cut to the kept lines.
 */
function resumeDocuments(
  docsPath: string,
  todo: readonly number[],
  methods: readonly string[],
  log: (s: string) => void,
): DocumentRecord[] {
  let text: string;
  try {
    text = existsSync(docsPath) ? readFileSync(docsPath, 'utf8') : '';
  } catch (e) {
    throw new FileFormatError(docsPath, fsErrorReason(e));
  }
  const records: DocumentRecord[] = [];
  let kept = 0;
  let problem: string | undefined;
  for (let p = 0; p < todo.length; p++) {
    const nl = text.indexOf('\n', kept);
    if (nl < 0) break;
    const line = text.slice(kept, nl);
    let rec: DocumentRecord | undefined;
    try {
      rec = JSON.parse(line) as DocumentRecord;
    } catch {
      problem = `line ${p + 1} is not a complete JSON record`;
      break;
    }
    const { check, ...body } = (rec ?? {}) as DocumentRecord & { check?: unknown };
    if (typeof check !== 'string' || check !== recordCheck(body)) {
      problem = `line ${p + 1} is damaged (${typeof check === 'string' ? 'its checksum does not match its contents' : 'no checksum'})`;
      break;
    }
    if (!documentRecordFits(rec, todo[p]!, methods)) {
      problem = `line ${p + 1} is not the record of document ${todo[p]} with every method's scores`;
      break;
    }
    records.push(rec);
    kept = nl + 1;
  }
  if (problem)
    log(`warning: ${docsPath}: ${problem}; keeping the ${records.length} documents before it, the rest is recomputed`);
  else if (kept < text.length && text.indexOf('\n', kept) >= 0)
    log(`warning: ${docsPath}: lines after the ${todo.length} documents of this run; dropped`);
  writeFileChecked(docsPath, text.slice(0, kept));
  return records;
}

/** The `check` of a documents.jsonl line: the first 16 hex digits of the SHA-256 of the record's JSON without it. */
function recordCheck(rec: object): string {
  return createHash('sha256').update(JSON.stringify(rec)).digest('hex').slice(0, 16);
}

/** A documents.jsonl line: the record and its checksum, so that a resumed run can tell a damaged line. */
function recordLine(rec: DocumentRecord): string {
  return `${JSON.stringify({ ...rec, check: recordCheck(rec) })}\n`;
}

function documentRecordFits(r: unknown, index: number, methods: readonly string[]): r is DocumentRecord {
  const rec = r as DocumentRecord;
  const numbers = (a: unknown) => Array.isArray(a) && a.every((v) => typeof v === 'number');
  return (
    typeof rec === 'object' &&
    rec !== null &&
    rec.index === index &&
    typeof rec.annotation_id === 'string' &&
    typeof rec.docid === 'string' &&
    Number.isInteger(rec.target) &&
    Number.isInteger(rec.predicted) &&
    typeof rec.truncated === 'boolean' &&
    typeof rec.methods === 'object' &&
    rec.methods !== null &&
    methods.every((m) => numbers(rec.methods[m]?.tokens) && numbers(rec.methods[m]?.words))
  );
}

interface ResultsSpec {
  outDir: string;
  methods: readonly string[];
  annotations: readonly EraserAnnotation[];
  accumulate?: boolean;
  model: string;
  shard?: Shard;
}

/**
 * Joins finished shards into the run one machine would have made: documents.jsonl in data-set order,
 * then every result file derived from it exactly as a single run derives them (so they are
 * byte-identical to an unsharded run's).
 */
export function mergeEraserShards(
  outDir: string,
  shards: readonly ShardRun[],
  identity: RunIdentity,
  annotations: readonly EraserAnnotation[],
  ks: readonly number[] = PIPELINE_KS,
): EraserSummary {
  const records: DocumentRecord[] = [];
  for (const r of shards) {
    const file = join(r.dir, 'documents.jsonl');
    const text = readFileSync(file, 'utf8');
    for (const [n, line] of text.split('\n').entries()) {
      if (!line) continue;
      try {
        records.push(JSON.parse(line) as DocumentRecord);
      } catch {
        throw new FileFormatError(file, `line ${n + 1} is not a complete JSON record`);
      }
    }
  }
  records.sort((a, b) => a.index - b.index);
  writeJsonAtomic(join(outDir, 'run.json'), identity);
  writeFileAtomic(join(outDir, 'documents.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const cfg = identity.model as { name: string };
  return writeResults(
    {
      outDir,
      methods: identity.methods as string[],
      annotations,
      accumulate: !(identity.resetPerK as boolean),
      model: cfg.name,
    },
    records,
    ks,
  );
}

function writeResults(opts: ResultsSpec, records: DocumentRecord[], ks: readonly number[]): EraserSummary {
  const { outDir, methods } = opts;
  const truth = records.map((r) => opts.annotations[r.index]!);
  const byMethod: Record<string, EraserMethodSummary> = {};
  const csv: (string | number)[][] = [];
  for (const name of methods) {
    const perK = new Map<number, string[]>(ks.map((k) => [k, []]));
    const predictions = new Map<number, ResultInstance[]>(ks.map((k) => [k, []]));
    for (const r of records) {
      const rationales = rationalesForShortDocs(
        Float32Array.from(r.methods[name]!.words),
        ks,
        opts.accumulate ?? true,
        r.docid,
      );
      for (const k of ks) {
        const preds: HardRationale[] = rationales.get(k)!;
        perK.get(k)!.push(identifierResultsLine(r.docid, preds));
        predictions.get(k)!.push({
          annotation_id: r.annotation_id,
          rationales: [{ docid: r.docid, hard_rationale_predictions: preds }],
        });
      }
    }
    const summary: EraserMethodSummary = { tokenF1: {}, scores: {} };
    for (const k of ks) {
      writeFileAtomic(join(outDir, name, `identifier_results_${k}.json`), `${perK.get(k)!.join('\n')}\n`);
      const report = scoreHardRationales(truth, predictions.get(k)!);
      writeJsonAtomic(join(outDir, name, `scores_${k}.json`), report.scores);
      summary.scores[k] = report.scores;
      summary.tokenF1[k] = report.scores.token_prf.instance_macro.f1;
      const t = report.scores.token_prf;
      csv.push([name, k, t.instance_macro.f1, t.instance_macro.p, t.instance_macro.r, t.instance_micro.f1]);
    }
    byMethod[name] = summary;
  }
  writeFileAtomic(
    join(outDir, 'token_f1.csv'),
    stringify(csv, {
      header: true,
      columns: ['method', 'k', 'token_f1_macro', 'token_precision_macro', 'token_recall_macro', 'token_f1_micro'],
    }),
  );
  const summary: EraserSummary = {
    benchmark: 'eraser',
    model: opts.model,
    documents: records.length,
    accuracy: records.filter((r) => r.predicted === r.target).length / Math.max(1, records.length),
    ks: [...ks],
    methods: byMethod,
    shard: opts.shard ?? null,
  };
  writeJsonAtomic(join(outDir, 'summary.json'), summary);
  return summary;
}

/**
 * The pipeline's top-k rationales; a document with fewer scored words than k (the reference's torch.topk
 * would raise) gets all of its words for that k.
 */
function rationalesForShortDocs(
  scores: Float32Array,
  ks: readonly number[],
  accumulate: boolean,
  docid: string,
): Map<number, HardRationale[]> {
  const fits = ks.filter((k) => k <= scores.length);
  const out = hardRationalesForK(scores, fits, { accumulate, document: docid });
  if (fits.length === ks.length) return out;
  let last = fits.length ? out.get(fits.at(-1)!)! : [];
  for (const k of ks.slice(fits.length)) {
    const all = hardRationalesForK(scores, [scores.length], { accumulate: false, document: docid }).get(scores.length)!;
    last = accumulate ? last.concat(all) : all;
    out.set(k, last.slice());
  }
  return out;
}

/** Write the token-F1 against k plot (the paper's figure) as `<outDir>/<name>.svg` and `.png`. */
export async function writeTokenF1Plot(outDir: string, s: EraserSummary, name = 'token_f1'): Promise<void> {
  const points = Object.entries(s.methods).flatMap(([m, r]) =>
    s.ks.map((k) => ({ x: k, y: r.tokenF1[k]!, series: m })),
  );
  await writeLineChart(join(outDir, name), points, {
    title: `ERASER movies: token-F1 (${s.model})`,
    xTitle: 'k (top-k words)',
    yTitle: 'token F1',
  });
}
