/**
 * Reader of the ERASER dataset layout (docs/formats.md#eraser-layout), as the reference's
 * `BERT_rationale_benchmark/utils.py` reads it for the pipeline and for metrics.py:
 *
 * - `<dataDir>/{train,val,test}.jsonl`: one annotation per line, `{"annotation_id", "classification", "evidences":
 *   [[{"docid", "start_token", "end_token", "start_sentence", "end_sentence", "text"}, …], …], "query",
 *   "query_type"?, "docids"?}`;
 * - `<dataDir>/docs/<docid>`: the raw document text (one sentence per line, tokens separated by spaces), or
 *   `<dataDir>/docs.jsonl` with `{"docid", "document"}` per line. A document is kept as the raw string, as the
 *   pipeline tokenises it; its ERASER tokens are `text.split()` (Python whitespace split, see `documentWords`).
 *
 * Unlike the reference (which asserts, raises a bare KeyError or silently accepts), every problem is a
 * FileFormatError naming the file, the line and what was expected. Evidence spans are checked against the number of
 * whitespace tokens of the document (the reference's metrics.py counts characters, quirk Q32).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, readInputFile } from '../formats/host-tensor.js';
import { pythonSplit } from '../text/wordpiece.js';

export type EraserSplit = 'train' | 'val' | 'test';

export interface EraserEvidence {
  docid: string;
  /** First token (inclusive) in `text.split()` of the document. */
  start_token: number;
  /** Last token (exclusive). */
  end_token: number;
  /** First sentence (line) index, inclusive; -1 when absent. */
  start_sentence: number;
  /** Last sentence index, exclusive; -1 when absent. */
  end_sentence: number;
  text: string;
}

export interface EraserAnnotation {
  annotation_id: string;
  classification: string;
  /** Evidence groups, each a list of evidences, in file order. */
  evidences: EraserEvidence[][];
  query: string;
  query_type?: string | null;
  docids?: string[] | null;
}

/** The movie-review classes (`movies_bert.json` → evidence_classifier.classes). */
export const MOVIES_CLASSES: readonly string[] = ['NEG', 'POS'];

/** Where an annotation was read from (for error messages), without adding fields to the objects. */
const origin = new WeakMap<EraserAnnotation, { file: string; line: number }>();

/** The file and 1-based line an annotation was read from, when it came from `loadEraserSplit`. */
export function annotationOrigin(ann: EraserAnnotation): { file: string; line: number } | undefined {
  return origin.get(ann);
}

/** Decode a UTF-8 text file as Python's text mode reads it (BOM kept, \r\n and \r turned into \n). */
export function readTextFile(file: string): string {
  const buf = readInputFile(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    throw new FileFormatError(file, 'not valid UTF-8 text');
  }
  return text.replace(/\r\n?/g, '\n');
}

/** The non-blank lines of a JSON-lines file, each parsed, with its 1-based line number. */
export function readJsonLines(file: string): { line: number; value: unknown }[] {
  const out: { line: number; value: unknown }[] = [];
  readTextFile(file)
    .split('\n')
    .forEach((text, i) => {
      if (text.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new FileFormatError(file, `line ${i + 1}: not valid JSON (${why}); expected one JSON object per line`);
      }
      out.push({ line: i + 1, value });
    });
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

const ANNOTATION_KEYS = new Set(['annotation_id', 'classification', 'evidences', 'query', 'query_type', 'docids']);
const EVIDENCE_KEYS = new Set(['docid', 'start_token', 'end_token', 'start_sentence', 'end_sentence', 'text']);

function parseEvidence(v: unknown, where: string, fail: (msg: string) => never): EraserEvidence {
  if (!isRecord(v)) fail(`${where}: expected an evidence object, found ${describe(v)}`);
  for (const k of Object.keys(v)) if (!EVIDENCE_KEYS.has(k)) fail(`${where}: unexpected key '${k}'`);
  for (const k of ['docid', 'text', 'start_token', 'end_token'])
    if (!(k in v)) fail(`${where}: missing required key '${k}'`);
  if (typeof v.docid !== 'string' || v.docid === '')
    fail(`${where}: 'docid' must be a non-empty string, found ${describe(v.docid)}`);
  if (typeof v.text !== 'string') fail(`${where}: 'text' must be a string, found ${describe(v.text)}`);
  const int = (k: string, dflt?: number): number => {
    const x = v[k] ?? dflt;
    if (typeof x !== 'number' || !Number.isInteger(x))
      fail(`${where}: '${k}' must be an integer, found ${describe(x)}`);
    return x;
  };
  const ev: EraserEvidence = {
    docid: v.docid,
    start_token: int('start_token'),
    end_token: int('end_token'),
    start_sentence: int('start_sentence', -1),
    end_sentence: int('end_sentence', -1),
    text: v.text,
  };
  if (ev.start_token < 0 || ev.end_token < ev.start_token)
    fail(`${where}: invalid token span [${ev.start_token}, ${ev.end_token}): expected 0 ≤ start_token ≤ end_token`);
  return ev;
}

/** Validate one parsed annotation line. */
export function parseAnnotation(
  value: unknown,
  file: string,
  line: number,
  classes: readonly string[] = MOVIES_CLASSES,
): EraserAnnotation {
  const fail = (msg: string): never => {
    throw new FileFormatError(file, `line ${line}: ${msg}`);
  };
  if (!isRecord(value)) return fail(`expected an annotation object, found ${describe(value)}`);
  for (const k of Object.keys(value))
    if (!ANNOTATION_KEYS.has(k)) fail(`unexpected key '${k}' (expected ${[...ANNOTATION_KEYS].join(', ')})`);
  for (const k of ['annotation_id', 'classification', 'evidences', 'query'])
    if (!(k in value)) fail(`missing required key '${k}'`);
  const id = value.annotation_id;
  if (typeof id !== 'string' || id === '') fail(`'annotation_id' must be a non-empty string, found ${describe(id)}`);
  const ann = id as string;
  const cls = value.classification;
  if (typeof cls !== 'string' || !classes.includes(cls))
    fail(`annotation ${ann}: classification ${describe(cls)} is not one of the classes ${JSON.stringify(classes)}`);
  if (typeof value.query !== 'string')
    fail(`annotation ${ann}: 'query' must be a string, found ${describe(value.query)}`);
  const qt = value.query_type;
  if (qt !== undefined && qt !== null && typeof qt !== 'string')
    fail(`annotation ${ann}: 'query_type' must be a string or null, found ${describe(qt)}`);
  const docids = value.docids;
  if (docids !== undefined && docids !== null && !(Array.isArray(docids) && docids.every((d) => typeof d === 'string')))
    fail(`annotation ${ann}: 'docids' must be a list of strings or null, found ${describe(docids)}`);
  const groups = value.evidences;
  if (!Array.isArray(groups))
    fail(`annotation ${ann}: 'evidences' must be a list of evidence groups, found ${describe(groups)}`);
  const evidences = (groups as unknown[]).map((g, gi) => {
    if (!Array.isArray(g)) fail(`annotation ${ann}: evidence group ${gi} must be a list, found ${describe(g)}`);
    return (g as unknown[]).map((e, ei) => parseEvidence(e, `annotation ${ann}: evidence [${gi}][${ei}]`, fail));
  });
  const out: EraserAnnotation = {
    annotation_id: ann,
    classification: cls as string,
    evidences,
    query: value.query as string,
  };
  if ('query_type' in value) out.query_type = (qt ?? null) as string | null;
  if ('docids' in value) out.docids = (docids ?? null) as string[] | null;
  origin.set(out, { file, line });
  return out;
}

/** Read and validate `<dataDir>/<split>.jsonl` (annotations in file order). */
export function loadEraserSplit(
  dataDir: string,
  split: EraserSplit,
  opts: { classes?: readonly string[] } = {},
): EraserAnnotation[] {
  if (split !== 'train' && split !== 'val' && split !== 'test')
    throw new RangeError(`unknown ERASER split '${split}': expected train, val or test`);
  const file = join(dataDir, `${split}.jsonl`);
  const seen = new Map<string, number>();
  return readJsonLines(file).map(({ line, value }) => {
    const ann = parseAnnotation(value, file, line, opts.classes ?? MOVIES_CLASSES);
    const prev = seen.get(ann.annotation_id);
    if (prev !== undefined)
      throw new FileFormatError(file, `line ${line}: annotation ${ann.annotation_id} already appears on line ${prev}`);
    seen.set(ann.annotation_id, line);
    return ann;
  });
}

/** Every docid the evidences of these annotations refer to, sorted. */
export function evidenceDocids(annotations: readonly EraserAnnotation[]): string[] {
  const ids = new Set<string>();
  for (const a of annotations) for (const g of a.evidences) for (const e of g) ids.add(e.docid);
  return [...ids].sort();
}

/** The ERASER tokens of a document: Python's `text.split()`. */
export function documentWords(text: string): string[] {
  return pythonSplit(text);
}

/** A loaded document set: docid → raw text, plus the file each came from (for messages). */
export interface EraserDocuments {
  texts: Map<string, string>;
  files: Map<string, string>;
}

/**
 * Read the documents `docids` (sorted, duplicates dropped) from `<dataDir>/docs/<docid>` or `<dataDir>/docs.jsonl`.
 * A missing docid or an empty document (no whitespace token) is an error naming the file.
 */
export function loadDocuments(dataDir: string, docids: Iterable<string>): EraserDocuments {
  const wanted = [...new Set(docids)].sort();
  const docsDir = join(dataDir, 'docs');
  const docsJsonl = join(dataDir, 'docs.jsonl');
  const texts = new Map<string, string>();
  const files = new Map<string, string>();
  const hasJsonl = existsSync(docsJsonl);
  if (hasJsonl && existsSync(docsDir))
    throw new FileFormatError(dataDir, 'both docs/ and docs.jsonl exist: expected exactly one of them');
  if (hasJsonl) {
    const all = new Map<string, { text: string; line: number }>();
    for (const { line, value } of readJsonLines(docsJsonl)) {
      if (!isRecord(value) || typeof value.docid !== 'string' || typeof value.document !== 'string')
        throw new FileFormatError(docsJsonl, `line ${line}: expected {"docid": string, "document": string}`);
      all.set(value.docid, { text: value.document.replace(/\r\n?/g, '\n'), line });
    }
    for (const d of wanted) {
      const doc = all.get(d);
      if (!doc) throw new FileFormatError(docsJsonl, `document '${d}' not found (it is referenced by an evidence)`);
      const where = `${docsJsonl}:${doc.line}`;
      if (documentWords(doc.text).length === 0)
        throw new FileFormatError(docsJsonl, `line ${doc.line}: document '${d}' is empty (no tokens)`);
      texts.set(d, doc.text);
      files.set(d, where);
    }
    return { texts, files };
  }
  if (!existsSync(docsDir) || !statSync(docsDir).isDirectory())
    throw new FileFormatError(docsDir, 'documents folder not found: expected docs/<docid> files or a docs.jsonl');
  for (const d of wanted) {
    if (d.includes('/') || d.includes('\\') || d === '.' || d === '..')
      throw new FileFormatError(docsDir, `invalid docid '${d}': expected a file name`);
    const file = join(docsDir, d);
    if (!existsSync(file))
      throw new FileFormatError(file, `document '${d}' not found in ${docsDir} (it is referenced by an evidence)`);
    const text = readTextFile(file);
    if (documentWords(text).length === 0) throw new FileFormatError(file, `document '${d}' is empty (no tokens)`);
    texts.set(d, text);
    files.set(d, file);
  }
  return { texts, files };
}

/**
 * Check that every evidence names a loaded document and that its token span lies within `text.split()` of that
 * document. Errors name the annotation's file and
 * line, the annotation, the span and the document length.
 */
export function checkEvidenceSpans(annotations: readonly EraserAnnotation[], docs: EraserDocuments): void {
  const lengths = new Map<string, number>();
  for (const ann of annotations) {
    const o = origin.get(ann);
    const file = o?.file ?? '<annotations>';
    const at = o ? `line ${o.line}: ` : '';
    ann.evidences.forEach((group, gi) => {
      group.forEach((ev, ei) => {
        const text = docs.texts.get(ev.docid);
        if (text === undefined)
          throw new FileFormatError(
            file,
            `${at}annotation ${ann.annotation_id}: evidence [${gi}][${ei}] refers to document '${ev.docid}', which was not loaded`,
          );
        let words = lengths.get(ev.docid);
        if (words === undefined) {
          words = documentWords(text).length;
          lengths.set(ev.docid, words);
        }
        if (ev.start_token < 0 || ev.end_token > words || ev.start_token > ev.end_token)
          throw new FileFormatError(
            file,
            `${at}annotation ${ann.annotation_id}: evidence [${gi}][${ei}] token span [${ev.start_token}, ${ev.end_token}) is out of range of document '${ev.docid}' (${words} tokens, ${docs.files.get(ev.docid) ?? ev.docid})`,
          );
      });
    });
  }
}

/** A split with its documents (every evidence docid), spans checked. */
export function loadEraserData(
  dataDir: string,
  split: EraserSplit,
  opts: { classes?: readonly string[] } = {},
): { annotations: EraserAnnotation[]; documents: EraserDocuments } {
  const annotations = loadEraserSplit(dataDir, split, opts);
  const documents = loadDocuments(dataDir, evidenceDocids(annotations));
  checkEvidenceSpans(annotations, documents);
  return { annotations, documents };
}
