/**
 * The ERASER movie-review benchmark after the explanation (docs/benchmarks.md#word-scores, #top-k-rationales,
 * #token-f1):
 *
 * - `scoresPerWord`: the pipeline's `scores_per_word_from_scores_per_token` (wordpiece scores → word scores);
 * - `topkWords` / `hardRationalesForK` / `identifierResultsLine`: its top-k hard rationales and the
 *   `identifier_results_<k>.json` lines, byte for byte;
 * - `scoreHardRationales`: `BERT_rationale_benchmark/metrics.py` for hard predictions (`iou_scores`,
 *   `rationale_prf`, `token_prf`) plus the two lines it prints (`macro_f1` and the argsort of the per-instance F1s).
 *
 * metrics.py iterates Python sets of tuples, so the order of its instances (the printed argsort and the summation
 * order of the macro means) depends on CPython's string hashing. With `PYTHONHASHSEED=0` (how the goldens were made)
 * that order is deterministic, and this module reproduces it: SipHash-1-3 with a zero key (CPython ≥ 3.11), the
 * xxHash-based tuple hash, CPython 3.11's set table (open addressing, linear probes of 9, perturbation, growth ×4),
 * and numpy's (< 1.25, non-SIMD) introsort `argsort`. Under any other hash seed the reference's own order is random,
 * and only the printed argsort and the last ulp of the macro means can differ; the scores themselves do not depend on
 * it.
 *
 * Pure TypeScript, no TF.js.
 */
import { type EraserAnnotation, readJsonLines } from '../datasets/eraser.js';
import { FileFormatError } from '../formats/host-tensor.js';
import { codePointLength } from '../text/wordpiece.js';
import { topkIndicesTorch } from './topk.js';

// ---------------------------------------------------------------------------------------------------------------
// Wordpiece scores → word scores
// ---------------------------------------------------------------------------------------------------------------

const SKIPPED_PIECES = new Set(['[CLS]', '[SEP]', '[UNK]', '[PAD]']);

export interface IdsToTokens {
  convertIdsToTokens(ids: ArrayLike<number> | BigInt64Array): string[];
}

/**
 * `scores_per_word_from_scores_per_token(words, tokenizer, input_ids, cam)` of bert_pipeline.py: every wordpiece other
 * than [CLS]/[SEP]/[UNK]/[PAD] contributes its score once per character (with `##` removed); walking the words with a
 * running character offset, a word's score is the max over its characters; the walk stops when the characters run
 * out (words after the truncation window get no score, the last scored word may be partly covered). The result has
 * one float32 per scored word; word i is ERASER token i.
 *
 * The reference asserts that the characters of every scored word but the last spell that word (it fails when a word
 * became [UNK] or normalisation changed its length, quirk Q27); here that is an error naming the document and the
 * word. Otherwise the behaviour is the reference's (the last word is not checked).
 *
 * @param words the document's whitespace tokens (`text.split()`)
 * @param cam one score per input id (the clamped explanation)
 * @param opts.document the docid or file named in errors
 */
export function scoresPerWord(
  words: readonly string[],
  tokenizer: IdsToTokens,
  inputIds: ArrayLike<number> | BigInt64Array,
  cam: ArrayLike<number>,
  opts: { document?: string } = {},
): Float32Array {
  const doc = opts.document ?? '<document>';
  if (cam.length !== inputIds.length)
    throw new RangeError(
      `${doc}: ${cam.length} token scores for ${inputIds.length} input ids; expected one score per id`,
    );
  const pieces = tokenizer.convertIdsToTokens(inputIds).map((t) => t.replaceAll('##', ''));
  const chars: string[] = [];
  const charScores: number[] = [];
  const f32 = new Float32Array(1);
  pieces.forEach((piece, i) => {
    if (SKIPPED_PIECES.has(piece)) return;
    f32[0] = cam[i]!;
    for (const ch of piece) {
      chars.push(ch);
      charScores.push(f32[0]);
    }
  });
  const n = charScores.length;
  const scores: number[] = [];
  const rebuilt: string[] = [];
  let start = 0;
  for (const word of words) {
    if (start >= n) break;
    const end = start + codePointLength(word);
    const stop = Math.min(end, n);
    let m = charScores[start]!;
    for (let c = start + 1; c < stop && !Number.isNaN(m); c++) {
      const v = charScores[c]!;
      if (v > m || Number.isNaN(v)) m = v; // np.max propagates NaN
    }
    scores.push(m);
    rebuilt.push(chars.slice(start, stop).join(''));
    start = end;
  }
  // The reference's check: words_from_chars[:-1] == words[:len(words_from_chars) - 1].
  // (With no characters at all, words_from_chars is empty and the reference compares [] with words[:-1].)
  const checked = rebuilt.length === 0 ? words.length - 1 : rebuilt.length - 1;
  for (let i = 0; i < checked; i++) {
    if (rebuilt[i] !== words[i]) {
      const unk = pieces.includes('[UNK]') ? ' (the document has [UNK] wordpieces, which are skipped)' : '';
      throw new FileFormatError(
        doc,
        `word ${i} '${words[i]}' does not line up with the wordpieces: its characters read '${rebuilt[i] ?? ''}'${unk}; ` +
          'the word-score mapping needs every word (but the last scored one) to be spelled by its wordpieces',
      );
    }
  }
  return Float32Array.from(scores);
}

// ---------------------------------------------------------------------------------------------------------------
// Top-k hard rationales and the results files
// ---------------------------------------------------------------------------------------------------------------

/** The pipeline's k values: 5, 10, …, 80 words. */
export const PIPELINE_KS: readonly number[] = Array.from({ length: 16 }, (_, i) => 5 * (i + 1));

export interface HardRationale {
  start_token: number;
  end_token: number;
}

/**
 * `torch.topk(scores, k)` (CPU, largest first): the index set is torch 1.13's, ties at the k-th place included
 * (`topkIndicesTorch`, a port of its selection); the order is value descending, then index ascending. torch's order
 * among equal values inside the top k is its unstable sort's; it only matters for the byte layout of a results file
 * (the goldens have no ties), never for the scores.
 */
export function topkWords(scores: ArrayLike<number>, k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k > scores.length)
    throw new RangeError(`top-${k} of ${scores.length} word scores: k must be an integer in [0, ${scores.length}]`);
  const idx = Array.from(topkIndicesTorch(scores, k));
  return idx.sort((a, b) => {
    const x = scores[a]!;
    const y = scores[b]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) return Number.isNaN(x) ? -1 : 1;
    if (x > y) return -1;
    if (x < y) return 1;
    return a - b;
  });
}

/**
 * The hard rationales of every k: one `{start_token: i, end_token: i + 1}` per top-k word. With `accumulate` (default,
 * the pipeline's behaviour, quirk Q25) the list for k is top-k₁ ++ top-k₂ ++ … ++ top-k, as the reference writes it
 * (duplicates included; under metrics.py's set semantics it is the top-k set whenever the sets are nested). Without
 * it, the list for k is just the top k.
 */
export function hardRationalesForK(
  scores: ArrayLike<number>,
  ks: readonly number[] = PIPELINE_KS,
  opts: { accumulate?: boolean; document?: string } = {},
): Map<number, HardRationale[]> {
  const accumulate = opts.accumulate ?? true;
  const out = new Map<number, HardRationale[]>();
  let running: HardRationale[] = [];
  for (const k of ks) {
    if (k > scores.length)
      throw new RangeError(
        `${opts.document ?? '<document>'}: top-${k} needs ${k} scored words, but only ${scores.length} are scored (torch.topk would fail too)`,
      );
    const these = topkWords(scores, k).map((i) => ({ start_token: i, end_token: i + 1 }));
    running = accumulate ? running.concat(these) : these;
    out.set(k, running.slice());
  }
  return out;
}

/** Python `json.dumps` of a str (ensure_ascii=True). */
export function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * One line of `identifier_results_<k>.json`, without the newline: Python's
 * `json.dumps({"annotation_id": docid, "rationales": [{"docid": docid, "hard_rationale_predictions": [...]}]})`.
 */
export function identifierResultsLine(docid: string, predictions: readonly HardRationale[]): string {
  const id = pyJsonString(docid);
  const preds = predictions.map((p) => `{"start_token": ${p.start_token}, "end_token": ${p.end_token}}`).join(', ');
  return `{"annotation_id": ${id}, "rationales": [{"docid": ${id}, "hard_rationale_predictions": [${preds}]}]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Results files (what metrics.py reads)
// ---------------------------------------------------------------------------------------------------------------

export interface ResultRationale {
  docid: string;
  hard_rationale_predictions?: HardRationale[];
}

export interface ResultInstance {
  annotation_id: string;
  rationales: ResultRationale[];
}

const resultOrigin = new WeakMap<ResultInstance, { file: string; line: number }>();

/**
 * Read a results file (JSON lines, one instance per line). Only the fields of hard predictions are kept; other fields
 * (soft predictions, classifications) are accepted and ignored.
 */
export function readResultsJsonl(file: string): ResultInstance[] {
  return readJsonLines(file).map(({ line, value }) => {
    const fail = (msg: string): never => {
      throw new FileFormatError(file, `line ${line}: ${msg}`);
    };
    const v = value as Record<string, unknown>;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('expected a results object');
    if (typeof v.annotation_id !== 'string') fail(`'annotation_id' must be a string`);
    if (!Array.isArray(v.rationales)) fail(`'rationales' must be a list of {docid, hard_rationale_predictions}`);
    const rationales = (v.rationales as unknown[]).map((r, ri) => {
      const rr = r as Record<string, unknown>;
      if (rr === null || typeof rr !== 'object' || typeof rr.docid !== 'string')
        fail(`rationales[${ri}] must be an object with a string 'docid'`);
      const out: ResultRationale = { docid: rr.docid as string };
      const hp = rr.hard_rationale_predictions;
      if (hp !== undefined && hp !== null) {
        if (!Array.isArray(hp)) fail(`rationales[${ri}].hard_rationale_predictions must be a list`);
        out.hard_rationale_predictions = (hp as unknown[]).map((p, pi) => {
          const pp = p as Record<string, unknown>;
          if (
            pp === null ||
            typeof pp !== 'object' ||
            !Number.isInteger(pp.start_token) ||
            !Number.isInteger(pp.end_token)
          )
            fail(`rationales[${ri}].hard_rationale_predictions[${pi}] must be {"start_token": int, "end_token": int}`);
          return { start_token: pp.start_token as number, end_token: pp.end_token as number };
        });
      }
      return out;
    });
    const inst: ResultInstance = { annotation_id: v.annotation_id as string, rationales };
    resultOrigin.set(inst, { file, line });
    return inst;
  });
}

/**
 * metrics.py's `verify_instances` for hard predictions, with its validation quirks fixed (Q32): an annotation id may
 * appear once, a docid once per instance, every docid must be a known document, spans must lie within the document's
 * whitespace tokens (not its characters), and distinct spans of one document must not overlap (identical spans, as
 * the accumulating pipeline writes them, are allowed). Throws a FileFormatError naming the file and line.
 *
 * @param docLengths docid → number of whitespace tokens; when omitted, only the structural checks run
 */
export function verifyResults(
  results: readonly ResultInstance[],
  docLengths?: ReadonlyMap<string, number>,
  file = '<results>',
): void {
  const seen = new Map<string, string>();
  for (const inst of results) {
    const o = resultOrigin.get(inst);
    const f = o?.file ?? file;
    const at = o ? `line ${o.line}: ` : '';
    const fail = (msg: string): never => {
      throw new FileFormatError(f, `${at}annotation ${inst.annotation_id}: ${msg}`);
    };
    const prev = seen.get(inst.annotation_id);
    if (prev !== undefined) fail(`appears more than once (also ${prev})`);
    seen.set(inst.annotation_id, o ? `line ${o.line}` : 'earlier');
    const docs = new Set<string>();
    for (const rat of inst.rationales) {
      if (docs.has(rat.docid)) fail(`docid ${rat.docid} appears twice; each document may appear once per instance`);
      docs.add(rat.docid);
      const len = docLengths?.get(rat.docid);
      if (docLengths && len === undefined) fail(`unknown document '${rat.docid}'`);
      const spans = new Map<string, HardRationale>();
      for (const p of rat.hard_rationale_predictions ?? []) {
        if (p.start_token < 0 || p.end_token < p.start_token || (len !== undefined && p.end_token > len))
          fail(
            `impossible span [${p.start_token}, ${p.end_token}) in document '${rat.docid}'${len !== undefined ? ` of ${len} tokens` : ''}`,
          );
        if (p.end_token > p.start_token) spans.set(`${p.start_token},${p.end_token}`, p);
      }
      const sorted = [...spans.values()].sort((a, b) => a.start_token - b.start_token || a.end_token - b.end_token);
      let reach: HardRationale | undefined;
      for (const s of sorted) {
        if (reach && s.start_token < reach.end_token)
          fail(
            `spans [${reach.start_token}, ${reach.end_token}) and [${s.start_token}, ${s.end_token}) of document '${rat.docid}' overlap`,
          );
        if (!reach || s.end_token > reach.end_token) reach = s;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CPython / numpy emulation (iteration order of sets, argsort, printing)
// ---------------------------------------------------------------------------------------------------------------

const M64 = (1n << 64n) - 1n;

function rotl64(x: bigint, b: bigint): bigint {
  return ((x << b) | (x >> (64n - b))) & M64;
}

/** SipHash-1-3 (CPython ≥ 3.11's string hash), 64-bit result as an unsigned bigint. */
function siphash13(k0: bigint, k1: bigint, data: Uint8Array): bigint {
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & M64;
    v2 = (v2 + v3) & M64;
    v1 = rotl64(v1, 13n) ^ v0;
    v3 = rotl64(v3, 16n) ^ v2;
    v0 = rotl64(v0, 32n);
    v2 = (v2 + v1) & M64;
    v0 = (v0 + v3) & M64;
    v1 = rotl64(v1, 17n) ^ v2;
    v3 = rotl64(v3, 21n) ^ v0;
    v2 = rotl64(v2, 32n);
  };
  const n = data.length;
  const full = n - (n % 8);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let off = 0; off < full; off += 8) {
    const m = view.getBigUint64(off, true);
    v3 ^= m;
    round();
    v0 ^= m;
  }
  let b = (BigInt(n) & 0xffn) << 56n;
  for (let i = 0; i < n - full; i++) b |= BigInt(data[full + i]!) << BigInt(8 * i);
  v3 ^= b;
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

const strHashCache = new Map<string, bigint>();

/** CPython `hash(str)` with PYTHONHASHSEED=0 (the bytes of its 1-, 2- or 4-byte internal form), as unsigned 64-bit. */
export function pyStrHash(s: string): bigint {
  const cached = strHashCache.get(s);
  if (cached !== undefined) return cached;
  let h: bigint;
  if (s.length === 0) h = 0n;
  else {
    const cps = Array.from(s, (c) => c.codePointAt(0)!);
    const max = cps.reduce((a, b) => Math.max(a, b), 0);
    const kind = max < 0x100 ? 1 : max < 0x10000 ? 2 : 4;
    const bytes = new Uint8Array(cps.length * kind);
    const dv = new DataView(bytes.buffer);
    cps.forEach((cp, i) => {
      if (kind === 1) bytes[i] = cp;
      else if (kind === 2) dv.setUint16(2 * i, cp, true);
      else dv.setUint32(4 * i, cp, true);
    });
    h = siphash13(0n, 0n, bytes);
    if (h === M64) h = M64 - 1n; // -1 is reserved: -2
  }
  strHashCache.set(s, h);
  return h;
}

/** CPython `hash(int)` as unsigned 64-bit (n mod 2^61 − 1 with the sign, −1 → −2). */
export function pyIntHash(n: number): bigint {
  const P = (1n << 61n) - 1n;
  const b = BigInt(n);
  let h = b < 0n ? -(-b % P) : b % P;
  if (h === -1n) h = -2n;
  return BigInt.asUintN(64, h);
}

const XXPRIME_1 = 11400714785074694791n;
const XXPRIME_2 = 14029467366897019727n;
const XXPRIME_5 = 2870177450012600261n;

/** CPython ≥ 3.8 `hash(tuple)` of items with these hashes, unsigned 64-bit. */
export function pyTupleHash(lanes: readonly bigint[]): bigint {
  let acc = XXPRIME_5;
  for (const lane of lanes) {
    acc = (acc + lane * XXPRIME_2) & M64;
    acc = rotl64(acc, 31n);
    acc = (acc * XXPRIME_1) & M64;
  }
  acc = (acc + (BigInt(lanes.length) ^ (XXPRIME_5 ^ 3527539n))) & M64;
  return acc === M64 ? 1546275796n : acc;
}

/** A hashable element: `id` decides equality, `hash` is its CPython hash. */
interface PyKey {
  id: string;
  hash: bigint;
}

const LINEAR_PROBES = 9;
const PERTURB_SHIFT = 5n;

/**
 * A CPython 3.11 `set` table, enough of it to know its iteration order: insertion (set_add_entry), growth
 * (set_table_resize with set_insert_clean), copy (set_merge into an empty set). Nothing is ever removed.
 */
class PySetTable {
  mask = 7;
  table: (PyKey | undefined)[] = new Array(8);
  fill = 0;
  used = 0;
  private readonly ids = new Set<string>();

  static fromIterable(items: Iterable<PyKey>): PySetTable {
    const s = new PySetTable();
    for (const k of items) s.add(k);
    return s;
  }

  /** `set(other)` / `PySet_New(other)` for another set. */
  static copyOf(other: PySetTable): PySetTable {
    const s = new PySetTable();
    if (other.used === 0) return s;
    if (other.used * 5 >= s.mask * 3) s.resize(other.used * 2);
    if (s.mask === other.mask && other.fill === other.used) s.table = other.table.slice();
    else for (const k of other.table) if (k) insertClean(s.table, s.mask, k);
    s.fill = s.used = other.used;
    for (const k of other.table) if (k) s.ids.add(k.id);
    return s;
  }

  add(k: PyKey): void {
    if (this.ids.has(k.id)) return; // found_active: equal keys have equal hashes, the probe would find it
    const mask = this.mask;
    let i = Number(k.hash & BigInt(mask));
    let perturb = k.hash;
    for (;;) {
      let probes = i + LINEAR_PROBES <= mask ? LINEAR_PROBES : 0;
      let j = i;
      do {
        if (this.table[j] === undefined) {
          this.table[j] = k;
          this.ids.add(k.id);
          this.fill++;
          this.used++;
          if (this.fill * 5 >= mask * 3) this.resize(this.used > 50000 ? this.used * 2 : this.used * 4);
          return;
        }
        j++;
      } while (probes-- > 0);
      perturb >>= PERTURB_SHIFT;
      i = (i * 5 + 1 + Number(perturb & BigInt(mask))) & mask;
    }
  }

  private resize(minused: number): void {
    let size = 8;
    while (size <= minused) size *= 2;
    const old = this.table;
    this.mask = size - 1;
    this.table = new Array(size);
    for (const k of old) if (k) insertClean(this.table, this.mask, k);
    this.fill = this.used;
  }

  *[Symbol.iterator](): IterableIterator<PyKey> {
    for (const k of this.table) if (k) yield k;
  }
}

function insertClean(table: (PyKey | undefined)[], mask: number, k: PyKey): void {
  let i = Number(k.hash & BigInt(mask));
  let perturb = k.hash;
  for (;;) {
    if (table[i] === undefined) {
      table[i] = k;
      return;
    }
    if (i + LINEAR_PROBES <= mask) {
      for (let j = 1; j <= LINEAR_PROBES; j++) {
        if (table[i + j] === undefined) {
          table[i + j] = k;
          return;
        }
      }
    }
    perturb >>= PERTURB_SHIFT;
    i = (i * 5 + 1 + Number(perturb & BigInt(mask))) & mask;
  }
}

/** The iteration order of CPython's `set(items)` (PYTHONHASHSEED=0) for elements with these ids and hashes. */
export function pythonSetOrder<T>(items: readonly T[], key: (item: T) => { id: string; hash: bigint }): T[] {
  const byId = new Map<string, T>();
  const keys = items.map((it) => {
    const k = key(it);
    if (!byId.has(k.id)) byId.set(k.id, it);
    return k;
  });
  return [...PySetTable.fromIterable(keys)].map((k) => byId.get(k.id)!);
}

/** numpy's default `argsort` (introsort: median-of-3 quicksort, insertion sort below 16, heapsort fallback). */
export function numpyArgsort(values: readonly number[]): number[] {
  const v = values;
  const less = (a: number, b: number): boolean => a < b || (Number.isNaN(b) && !Number.isNaN(a));
  const n = v.length;
  const tosort = Array.from({ length: n }, (_, i) => i);
  if (n < 2) return tosort;
  const swap = (a: number, b: number): void => {
    const t = tosort[a]!;
    tosort[a] = tosort[b]!;
    tosort[b] = t;
  };
  const at = (p: number): number => v[tosort[p]!]!;
  const stack: number[] = [];
  const depthStack: number[] = [];
  let pl = 0;
  let pr = n - 1;
  let cdepth = 2 * (31 - Math.clz32(n));
  for (;;) {
    if (cdepth < 0) {
      aheapsort(v, tosort, pl, pr - pl + 1, less);
    } else {
      while (pr - pl > 15) {
        const pm = pl + ((pr - pl) >> 1);
        if (less(at(pm), at(pl))) swap(pm, pl);
        if (less(at(pr), at(pm))) swap(pr, pm);
        if (less(at(pm), at(pl))) swap(pm, pl);
        const vp = at(pm);
        let pi = pl;
        let pj = pr - 1;
        swap(pm, pj);
        for (;;) {
          do ++pi;
          while (less(at(pi), vp));
          do --pj;
          while (less(vp, at(pj)));
          if (pi >= pj) break;
          swap(pi, pj);
        }
        const pk = pr - 1;
        swap(pi, pk);
        if (pi - pl < pr - pi) {
          stack.push(pi + 1, pr);
          pr = pi - 1;
        } else {
          stack.push(pl, pi - 1);
          pl = pi + 1;
        }
        depthStack.push(--cdepth);
      }
      for (let pi = pl + 1; pi <= pr; ++pi) {
        const vi = tosort[pi]!;
        const vp = v[vi]!;
        let pj = pi;
        let pk = pi - 1;
        while (pj > pl && less(vp, at(pk))) tosort[pj--] = tosort[pk--]!;
        tosort[pj] = vi;
      }
    }
    if (stack.length === 0) break;
    pr = stack.pop()!;
    pl = stack.pop()!;
    cdepth = depthStack.pop()!;
  }
  return tosort;
}

function aheapsort(
  v: readonly number[],
  tosort: number[],
  offset: number,
  count: number,
  less: (a: number, b: number) => boolean,
): void {
  // 1-based heap over tosort[offset .. offset + count - 1]
  const a = (i: number): number => tosort[offset + i - 1]!;
  const set = (i: number, x: number): void => {
    tosort[offset + i - 1] = x;
  };
  let n = count;
  const sift = (l: number, tmp: number, size: number): void => {
    let i = l;
    let j = l << 1;
    while (j <= size) {
      if (j < size && less(v[a(j)]!, v[a(j + 1)]!)) j += 1;
      if (less(v[tmp]!, v[a(j)]!)) {
        set(i, a(j));
        i = j;
        j += j;
      } else break;
    }
    set(i, tmp);
  };
  for (let l = n >> 1; l > 0; --l) sift(l, a(l), n);
  while (n > 1) {
    const tmp = a(n);
    set(n, a(1));
    n -= 1;
    sift(1, tmp, n);
  }
}

/** `str()` of a 1-D numpy integer array (default print options: linewidth 75, threshold 1000, edgeitems 3). */
export function numpyIntArrayStr(values: readonly number[]): string {
  const n = values.length;
  if (n === 0) return '[]';
  const lineWidth = 75;
  const edge = 3;
  const summary = n > 1000;
  const shown = summary ? [...values.slice(0, edge), ...values.slice(n - edge)] : values;
  const width = shown.reduce((w, x) => Math.max(w, String(x).length), 0);
  const fmt = (x: number): string => String(x).padStart(width, ' ');
  const hanging = ' ';
  const elemWidth = lineWidth - 1; // - max(len(separator.rstrip()), len(']'))
  let s = '';
  let line = hanging;
  const extend = (word: string): void => {
    const wrap = line.length + word.length > elemWidth && line.length > hanging.length;
    if (wrap) {
      s += `${line.trimEnd()}\n`;
      line = hanging;
    }
    line += word;
  };
  const leading = summary ? edge : 0;
  const trailing = summary ? edge : n;
  for (let i = 0; i < leading; i++) {
    extend(fmt(values[i]!));
    line += ' ';
  }
  if (summary) {
    extend('...');
    line += ' ';
  }
  for (let i = trailing; i > 1; i--) {
    extend(fmt(values[n - i]!));
    line += ' ';
  }
  extend(fmt(values[n - 1]!));
  s += line;
  return `[${s.slice(hanging.length)}]`;
}

/** Python `repr(float)`: the shortest round-trip digits, fixed notation for 1e-4 ≤ |x| < 1e16, else 'e±XX'. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expPart] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expPart);
  const decpt = exp + 1;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// metrics.py scoring of hard predictions
// ---------------------------------------------------------------------------------------------------------------

/** metrics.py's `Rationale(ann_id, docid, start_token, end_token)`. */
interface Rationale {
  ann: string;
  docid: string;
  start: number;
  end: number;
  id: string;
  hash: bigint;
}

function rationale(ann: string, docid: string, start: number, end: number): Rationale {
  return {
    ann,
    docid,
    start,
    end,
    id: JSON.stringify([ann, docid, start, end]),
    hash: pyTupleHash([pyStrHash(ann), pyStrHash(docid), pyIntHash(start), pyIntHash(end)]),
  };
}

function toTokenLevel(r: Rationale): Rationale[] {
  const out: Rationale[] = [];
  for (let t = r.start; t < r.end; t++) out.push(rationale(r.ann, r.docid, t, t + 1));
  return out;
}

function instanceKey(r: Rationale): string {
  return JSON.stringify([r.ann, r.docid]);
}

export interface PRF {
  p: number;
  r: number;
  f1: number;
}

export interface InstancePRF {
  instance_micro: PRF;
  instance_macro: PRF;
}

export interface IouScore {
  threshold: number;
  micro: PRF;
  macro: PRF;
}

/** The `--score_file` JSON of metrics.py for hard predictions (key order as metrics.py builds it). */
export interface HardRationaleScores {
  iou_scores: IouScore[];
  rationale_prf: InstancePRF;
  token_prf: InstancePRF;
}

export interface HardRationaleReport {
  scores: HardRationaleScores;
  /** What metrics.py prints before the score dict: the span-level and then the token-level `macro_f1 argsort` line. */
  printedLines: [string, string];
}

function f1(p: number, r: number): number {
  if (p === 0 || r === 0) return 0;
  return (2 * p * r) / (p + r);
}

/** The truth rationales of the annotations in metrics.py's order (evidence groups iterate as its frozenset does). */
function truthRationales(annotations: readonly EraserAnnotation[]): Rationale[] {
  const out: Rationale[] = [];
  for (const ann of annotations) {
    const groups = pythonSetOrder(ann.evidences, (g) => ({
      id: JSON.stringify(g.map((e) => [e.text, e.docid, e.start_token, e.end_token, e.start_sentence, e.end_sentence])),
      hash: pyTupleHash(
        g.map((e) =>
          pyTupleHash([
            pyStrHash(e.text),
            pyStrHash(e.docid),
            pyIntHash(e.start_token),
            pyIntHash(e.end_token),
            pyIntHash(e.start_sentence),
            pyIntHash(e.end_sentence),
          ]),
        ),
      ),
    }));
    for (const g of groups)
      for (const e of g) out.push(rationale(ann.annotation_id, e.docid, e.start_token, e.end_token));
  }
  return out;
}

/** `_keyed_rationale_from_list`: (ann_id, docid) → the distinct rationales, keys in first-occurrence order. */
function keyed(rats: Iterable<Rationale>): Map<string, Map<string, Rationale>> {
  const out = new Map<string, Map<string, Rationale>>();
  for (const r of rats) {
    const k = instanceKey(r);
    let m = out.get(k);
    if (!m) out.set(k, (m = new Map()));
    if (!m.has(r.id)) m.set(r.id, r);
  }
  return out;
}

function partialMatchScore(truth: Rationale[], pred: Rationale[], thresholds: readonly number[]): IouScore[] {
  const annToRat = keyed(truth);
  const predToRat = keyed(pred);
  const numTruth = [...annToRat].map(([k, v]) => [k, v.size] as const);
  const numPred = [...predToRat].map(([k, v]) => [k, v.size] as const);
  const ious = new Map<string, number[]>();
  for (const [k, preds] of predToRat) {
    const truths = [...(annToRat.get(k)?.values() ?? [])];
    const best: number[] = [];
    for (const p of preds.values()) {
      let bestIou = 0;
      const pl = Math.max(0, p.end - p.start);
      for (const t of truths) {
        const tl = Math.max(0, t.end - t.start);
        const num = Math.max(0, Math.min(p.end, t.end) - Math.max(p.start, t.start));
        const denom = pl + tl - num;
        const iou = denom === 0 ? 0 : num / denom;
        if (iou > bestIou) bestIou = iou;
      }
      best.push(bestIou);
    }
    ious.set(k, best);
  }
  const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
  return thresholds.map((threshold) => {
    const tps = new Map<string, number>();
    for (const [k, vs] of ious) tps.set(k, vs.filter((x) => x >= threshold).length);
    const tpSum = sum([...tps.values()]);
    const truthSum = sum(numTruth.map(([, n]) => n));
    const predSum = sum(numPred.map(([, n]) => n));
    const microR = truthSum > 0 ? tpSum / truthSum : 0;
    const microP = predSum > 0 ? tpSum / predSum : 0;
    const macroRs = numTruth.map(([k, n]) => (n > 0 ? (tps.get(k) ?? 0) / n : 0));
    const macroPs = numPred.map(([k, n]) => (n > 0 ? (tps.get(k) ?? 0) / n : 0));
    const macroR = macroRs.length > 0 ? sum(macroRs) / macroRs.length : 0;
    const macroP = macroPs.length > 0 ? sum(macroPs) / macroPs.length : 0;
    return {
      threshold,
      micro: { p: microP, r: microR, f1: f1(microR, microP) },
      macro: { p: macroP, r: macroR, f1: f1(macroR, macroP) },
    };
  });
}

/** `score_hard_rationale_predictions` and the line it prints. */
function scoreHardPredictions(truthList: Rationale[], predList: Rationale[]): { prf: InstancePRF; line: string } {
  const truthSet = PySetTable.fromIterable(truthList);
  const predSet = PySetTable.fromIterable(predList);
  if (predSet.used === 0) throw new RangeError('metrics.py would divide by zero: there are no hard predictions');
  if (truthSet.used === 0) throw new RangeError('metrics.py would divide by zero: the split has no evidence');
  const truthIds = new Set<string>([...truthSet].map((k) => k.id));
  let both = 0;
  for (const k of predSet) if (truthIds.has(k.id)) both++;
  const microP = both / predSet.used;
  const microR = both / truthSet.used;
  const annToRat = keyed([...truthSet] as Rationale[]);
  const predToRat = keyed([...predSet] as Rationale[]);
  const keyOf = (k: string): PyKey => {
    const [ann, docid] = JSON.parse(k) as [string, string];
    return { id: k, hash: pyTupleHash([pyStrHash(ann), pyStrHash(docid)]) };
  };
  // set(ann_to_rat.keys()) | pred_to_rat.keys()
  const keys = PySetTable.copyOf(PySetTable.fromIterable([...annToRat.keys()].map(keyOf)));
  for (const k of predToRat.keys()) keys.add(keyOf(k));
  const inst: PRF[] = [];
  for (const { id } of keys) {
    const t = annToRat.get(id);
    const p = predToRat.get(id);
    let common = 0;
    if (t && p) for (const rid of p.keys()) if (t.has(rid)) common++;
    const ip = p && p.size > 0 ? common / p.size : 0;
    const ir = t && t.size > 0 ? common / t.size : 0;
    inst.push({ p: ip, r: ir, f1: f1(ip, ir) });
  }
  let sp = 0;
  let sr = 0;
  let sf = 0;
  for (const x of inst) sp += x.p;
  for (const x of inst) sr += x.r;
  for (const x of inst) sf += x.f1;
  const macro = { p: sp / inst.length, r: sr / inst.length, f1: sf / inst.length };
  const order = numpyArgsort(inst.map((x) => x.f1)).reverse();
  return {
    prf: { instance_micro: { p: microP, r: microR, f1: f1(microP, microR) }, instance_macro: macro },
    line: `${pyFloatRepr(macro.f1)} ${numpyIntArrayStr(order)}`,
  };
}

/**
 * metrics.py for hard rationale predictions: truth = every evidence of every annotation of the split, predictions =
 * every `hard_rationale_predictions` entry. `iou_scores` per threshold (default [0.5]), `rationale_prf` on whole spans,
 * `token_prf` on single tokens (`token_prf.instance_macro.f1` is the paper's token-F1), and the two printed lines.
 * Run `verifyResults` first for metrics.py's input validation.
 */
export function scoreHardRationales(
  truthAnnotations: readonly EraserAnnotation[],
  predictions: readonly ResultInstance[],
  opts: { iouThresholds?: readonly number[] } = {},
): HardRationaleReport {
  const first = predictions[0]?.rationales[0];
  if (!first?.hard_rationale_predictions)
    throw new RangeError(
      'no hard predictions: metrics.py scores hard rationales only when the first instance has rationales[0].hard_rationale_predictions',
    );
  const truth = truthRationales(truthAnnotations);
  const pred: Rationale[] = [];
  for (const inst of predictions)
    for (const rat of inst.rationales)
      for (const p of rat.hard_rationale_predictions ?? [])
        pred.push(rationale(inst.annotation_id, rat.docid, p.start_token, p.end_token));
  const iou = partialMatchScore(truth, pred, opts.iouThresholds ?? [0.5]);
  const span = scoreHardPredictions(truth, pred);
  const token = scoreHardPredictions(truth.flatMap(toTokenLevel), pred.flatMap(toTokenLevel));
  return {
    scores: { iou_scores: iou, rationale_prf: span.prf, token_prf: token.prf },
    printedLines: [span.line, token.line],
  };
}
