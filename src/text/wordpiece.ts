/**
 * BERT WordPiece tokenisation, as HF `BertTokenizer` (uncased, transformers 3.x) does it for the ERASER pipeline
 * (docs/benchmarks.md#tokenisation):
 *
 * 1. Special tokens that occur literally in the text ([CLS], [SEP], [UNK], [PAD], [MASK]) are split off first and kept
 *    as they are (HF `tokenize` → `split_on_tokens`, with `never_split`).
 * 2. BasicTokenizer on every other piece: clean the text (drop U+0000, U+FFFD and control characters (category C*,
 *    except tab/newline/CR); every whitespace character (space, tab, newline, CR, category Zs) becomes a space), put
 *    spaces around CJK ideographs, split on whitespace (Python `str.split()`), lower-case each word, NFD + drop
 *    combining marks (category Mn), split on punctuation (ASCII 33–47, 58–64, 91–96, 123–126 and category P*), split
 *    on whitespace again.
 * 3. WordPiece on every word: greedy longest-match-first with `##` continuation pieces; a word of more than
 *    `maxInputCharsPerWord` (100) code points, or one that some position cannot match, becomes a single [UNK].
 *
 * Lengths and slices are in Unicode code points, as in Python. Character categories come from the JavaScript
 * engine's Unicode tables (Node 20: Unicode 15), Python 3.11's `unicodedata` has Unicode 14: characters assigned in
 * between could be treated differently (none occur in English reviews).
 *
 * Pure TypeScript, no TF.js.
 */
import { FileFormatError, readInputFile } from '../formats/host-tensor.js';

/** The special tokens a BERT vocabulary must contain. */
export const REQUIRED_SPECIAL_TOKENS = ['[CLS]', '[SEP]', '[UNK]', '[PAD]'] as const;
/** HF BertTokenizer's `all_special_tokens` (never split, never lower-cased). [MASK] need not be in the vocabulary. */
const NEVER_SPLIT = ['[UNK]', '[SEP]', '[PAD]', '[CLS]', '[MASK]'] as const;

export interface EncodeOptions {
  /** Maximum length of the encoded sequence, special tokens included (the pipeline's `max_length`). */
  maxLength: number;
  /** Add [CLS] … [SEP] (default true; the pipeline always does). */
  addSpecialTokens?: boolean;
  /** Drop wordpieces from the end so that the result fits maxLength (default true). When false, a longer text throws. */
  truncation?: boolean;
}

export interface Encoding {
  inputIds: Int32Array;
  /** All ones (no padding). */
  attentionMask: Int32Array;
  /** The tokens of inputIds ([CLS] and [SEP] included). */
  tokens: string[];
  /** True when wordpieces were dropped to fit maxLength. */
  truncated: boolean;
}

/** Python `str.isspace()` characters: what `str.split()` (no argument) splits on. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: Python's str.isspace() includes U+001C–U+001F and U+0085
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** Python `text.split()`: split on runs of Unicode whitespace, no empty strings. */
export function pythonSplit(text: string): string[] {
  const out: string[] = [];
  for (const w of text.split(PY_WHITESPACE)) if (w.length > 0) out.push(w);
  return out;
}

/** Number of code points (Python `len` of a str). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const PUNCTUATION = /^\p{P}$/u;
const NONSPACING_MARK = /\p{Mn}/gu;

function isWhitespaceChar(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch);
}

function isControlChar(ch: string): boolean {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return CONTROL.test(ch);
}

function isPunctuationChar(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  return PUNCTUATION.test(ch);
}

/** The CJK Unified Ideographs blocks BERT treats as one-character words. */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** BasicTokenizer._clean_text followed by _tokenize_chinese_chars. */
function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControlChar(ch)) continue;
    if (isWhitespaceChar(ch)) out += ' ';
    else if (isChineseChar(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return out;
}

function stripAccents(word: string): string {
  return word.normalize('NFD').replace(NONSPACING_MARK, '');
}

function splitOnPunctuation(word: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const ch of word) {
    if (isPunctuationChar(ch)) {
      if (current) out.push(current);
      out.push(ch);
      current = '';
    } else current += ch;
  }
  if (current) out.push(current);
  return out;
}

/** BERT's BasicTokenizer (do_lower_case, tokenize_chinese_chars) on a text without special tokens. */
export function basicTokenize(text: string): string[] {
  const split: string[] = [];
  for (let word of pythonSplit(cleanText(text))) {
    word = stripAccents(word.toLowerCase());
    split.push(...splitOnPunctuation(word));
  }
  return pythonSplit(split.join(' '));
}

/** Split literal special tokens off the text (HF `split_on_tokens`): text pieces and special tokens, in order. */
function splitOnSpecialTokens(text: string): { text: string; special: boolean }[] {
  let parts: { text: string; special: boolean }[] = [{ text, special: false }];
  for (const tok of NEVER_SPLIT) {
    const next: { text: string; special: boolean }[] = [];
    for (const p of parts) {
      if (p.special || !p.text.includes(tok)) {
        next.push(p);
        continue;
      }
      const pieces = p.text.split(tok);
      pieces.forEach((piece, i) => {
        if (i > 0) next.push({ text: tok, special: true });
        if (piece.length > 0) next.push({ text: piece, special: false });
      });
    }
    parts = next;
  }
  return parts;
}

export class WordPieceTokenizer {
  /** token → id (for a duplicated line, the last one wins, as in HF's `load_vocab`). */
  private readonly vocab: Map<string, number>;
  /** id → token (the line). */
  private readonly idsToTokens: string[];
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  readonly padId: number;
  readonly maxInputCharsPerWord: number;

  /**
   * @param tokens one token per id (id = index)
   * @param source the file (or a description) named in errors
   */
  constructor(tokens: readonly string[], source = '<vocab>', opts: { maxInputCharsPerWord?: number } = {}) {
    this.idsToTokens = tokens.slice();
    this.vocab = new Map();
    tokens.forEach((t, i) => {
      this.vocab.set(t, i);
    });
    const missing = REQUIRED_SPECIAL_TOKENS.filter((t) => !this.vocab.has(t));
    if (missing.length > 0) {
      const crlf = tokens.some((t) => t.endsWith('\r'))
        ? ' (the lines end with \\r: convert the file to \\n newlines)'
        : '';
      throw new FileFormatError(
        source,
        `BERT vocabulary without ${missing.join(', ')}: expected one token per line including ${REQUIRED_SPECIAL_TOKENS.join(', ')}${crlf}`,
      );
    }
    this.clsId = this.vocab.get('[CLS]')!;
    this.sepId = this.vocab.get('[SEP]')!;
    this.unkId = this.vocab.get('[UNK]')!;
    this.padId = this.vocab.get('[PAD]')!;
    this.maxInputCharsPerWord = opts.maxInputCharsPerWord ?? 100;
  }

  /** Read a `vocab.txt` (UTF-8, one token per line, id = line index; only the '\n' is stripped, as HF does). */
  static fromFile(file: string, opts: { maxInputCharsPerWord?: number } = {}): WordPieceTokenizer {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(readInputFile(file));
    } catch (e) {
      if (e instanceof FileFormatError) throw e;
      throw new FileFormatError(file, 'not a UTF-8 text file: expected a BERT vocab.txt');
    }
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) throw new FileFormatError(file, 'empty vocabulary: expected one token per line');
    return new WordPieceTokenizer(lines, file, opts);
  }

  get vocabSize(): number {
    return this.idsToTokens.length;
  }

  /** Whether the vocabulary has this token. */
  has(token: string): boolean {
    return this.vocab.has(token);
  }

  /** The id of a token; [UNK]'s id for a token not in the vocabulary (HF `convert_tokens_to_ids`). */
  tokenId(token: string): number {
    return this.vocab.get(token) ?? this.unkId;
  }

  /** The tokens of ids; an id outside the vocabulary gives '[UNK]' (HF `convert_ids_to_tokens`). */
  convertIdsToTokens(ids: ArrayLike<number> | BigInt64Array | readonly bigint[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]!);
      out.push((Number.isInteger(id) && id >= 0 ? this.idsToTokens[id] : undefined) ?? '[UNK]');
    }
    return out;
  }

  /** WordPiece on one basic-tokenised word. */
  wordpiece(word: string): string[] {
    const chars = Array.from(word);
    if (chars.length > this.maxInputCharsPerWord) return ['[UNK]'];
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (start < end) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = `##${sub}`;
        if (this.vocab.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) return ['[UNK]'];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }

  /** The wordpieces of a text, without special tokens added (HF `tokenize`). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const part of splitOnSpecialTokens(text)) {
      if (part.special) {
        out.push(part.text);
        continue;
      }
      for (const word of basicTokenize(part.text)) out.push(...this.wordpiece(word));
    }
    return out;
  }

  /**
   * HF `encode_plus(text, add_special_tokens=True, max_length, truncation=True, pad_to_max_length=False)`:
   * [CLS] wordpieces [SEP], the wordpieces truncated at the end so that the whole has at most maxLength ids.
   */
  encode(text: string, opts: EncodeOptions): Encoding {
    const addSpecial = opts.addSpecialTokens ?? true;
    const truncation = opts.truncation ?? true;
    const specials = addSpecial ? 2 : 0;
    if (!Number.isInteger(opts.maxLength) || opts.maxLength < specials)
      throw new RangeError(`encode: maxLength must be an integer ≥ ${specials}, got ${opts.maxLength}`);
    let pieces = this.tokenize(text);
    const room = opts.maxLength - specials;
    let truncated = false;
    if (pieces.length > room) {
      if (!truncation)
        throw new RangeError(`encode: ${pieces.length + specials} tokens exceed maxLength ${opts.maxLength}`);
      pieces = pieces.slice(0, room);
      truncated = true;
    }
    const tokens = addSpecial ? ['[CLS]', ...pieces, '[SEP]'] : pieces;
    const inputIds = Int32Array.from(tokens, (t) => this.tokenId(t));
    return { inputIds, attentionMask: new Int32Array(inputIds.length).fill(1), tokens, truncated };
  }
}
