import { inflateSync } from 'node:zlib';
import { FileFormatError, readInputFile } from './host-tensor.js';

/**
 * A small reader for MATLAB Level-5 MAT-files (what MATLAB writes with `-v6`/`-v7` and `scipy.io.savemat` writes):
 * a 128-byte header, then data elements. Each element is an 8-byte tag (type, byte count) followed by its data padded
 * to 8 bytes, or a "small element" (count ≤ 4 packed into the tag's upper half, data in the tag's second word).
 * `miCOMPRESSED` elements hold one zlib-compressed element; `miMATRIX` elements hold array flags, dimensions, a name
 * and the class-specific content.
 *
 * Supported: numeric classes (double, single, int8…uint64, logical flag), char, cell and struct, any nesting.
 * Not supported (clear error): complex numbers, sparse arrays, objects, function handles.
 * Arrays are returned row-major (C order) with MATLAB's dimensions: an H×W×3 image comes back as HWC data.
 */

export type MatNumericClass =
  | 'double'
  | 'single'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64';

export type MatNumericData =
  | Float64Array
  | Float32Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface MatNumeric {
  kind: 'numeric';
  class: MatNumericClass;
  /** MATLAB `logical` (stored as uint8 with the logical flag). */
  logical: boolean;
  dims: number[];
  /** Row-major (C-order) values, `data.length = prod(dims)`. */
  data: MatNumericData;
}

export interface MatChar {
  kind: 'char';
  dims: number[];
  /** The characters in row-major order (for a 1×n char array, the string). */
  text: string;
}

export interface MatCell {
  kind: 'cell';
  dims: number[];
  /** Row-major elements. */
  cells: MatValue[];
}

export interface MatStruct {
  kind: 'struct';
  dims: number[];
  fields: string[];
  /** Row-major elements, each mapping field name → value. */
  elements: Map<string, MatValue>[];
}

export type MatValue = MatNumeric | MatChar | MatCell | MatStruct;

/** Class codes (mxCLASS) of the numeric classes, with the typed array each one is read into. */
const NUMERIC_CLASSES: Record<number, [MatNumericClass, new (n: number) => MatNumericData]> = {
  6: ['double', Float64Array],
  7: ['single', Float32Array],
  8: ['int8', Int8Array],
  9: ['uint8', Uint8Array],
  10: ['int16', Int16Array],
  11: ['uint16', Uint16Array],
  12: ['int32', Int32Array],
  13: ['uint32', Uint32Array],
  14: ['int64', BigInt64Array],
  15: ['uint64', BigUint64Array],
};
const CLASS_NAMES: Record<number, string> = {
  1: 'cell',
  2: 'struct',
  3: 'object',
  4: 'char',
  5: 'sparse',
  16: 'function',
};

/** Deepest nesting of cells/structs accepted (MATLAB data never comes close). */
const MAX_DEPTH = 64;
/** Most elements of a struct array without fields (they take no bytes, so the file size cannot bound them). */
const MAX_EMPTY = 1 << 20;

const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;
const MI_UTF8 = 16;
const MI_UTF16 = 17;
/** Element size in bytes of each miTYPE that can hold numbers. */
const MI_SIZE: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 2,
  5: 4,
  6: 4,
  7: 4,
  9: 8,
  12: 8,
  13: 8,
  16: 1,
  17: 2,
  18: 4,
};

interface Element {
  type: number;
  /** Data bytes (a view). */
  data: Uint8Array;
  /** Offset of the next element. */
  next: number;
}

class Reader {
  constructor(
    readonly file: string,
    readonly le: boolean,
  ) {}

  fail(problem: string): never {
    throw new FileFormatError(this.file, `Level-5 MAT-file: ${problem}`);
  }

  view(b: Uint8Array): DataView {
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** The element starting at `pos` of `buf` (`where` names the container for error messages). */
  element(buf: Uint8Array, pos: number, where: string): Element {
    if (pos + 8 > buf.length) this.fail(`truncated: ${where} needs an 8-byte tag at byte ${pos}, ${buf.length} bytes`);
    const v = this.view(buf);
    const first = v.getUint32(pos, this.le);
    if (first >>> 16 !== 0) {
      const n = first >>> 16;
      if (n > 4) this.fail(`${where}: small element at byte ${pos} claims ${n} bytes (at most 4)`);
      return { type: first & 0xffff, data: buf.subarray(pos + 4, pos + 4 + n), next: pos + 8 };
    }
    const n = v.getUint32(pos + 4, this.le);
    if (pos + 8 + n > buf.length) {
      this.fail(`truncated: ${where} at byte ${pos} claims ${n} data bytes, only ${buf.length - pos - 8} remain`);
    }
    const type = first;
    // Compressed elements are not padded (they end where the next tag starts); all others are padded to 8 bytes.
    const next = type === MI_COMPRESSED ? pos + 8 + n : pos + 8 + Math.ceil(n / 8) * 8;
    return { type, data: buf.subarray(pos + 8, pos + 8 + n), next: Math.min(next, buf.length) };
  }

  /** Numbers of any numeric miTYPE as doubles (or bigints for 64-bit integers, converted by the caller). */
  numbers(el: Element, where: string): number[] {
    const size = MI_SIZE[el.type];
    if (size === undefined) this.fail(`${where}: element type ${el.type} does not hold numbers`);
    const v = this.view(el.data);
    const out: number[] = [];
    for (let p = 0; p + size <= el.data.length; p += size) out.push(Number(readMi(v, el.type, p, this.le)));
    return out;
  }

  /** Parses a miMATRIX element's content; returns the array and its name. */
  matrix(data: Uint8Array, where: string, depth = 0): { name: string; value: MatValue } {
    // Cells and structs nest by recursion; a corrupt file must not be able to exhaust the stack.
    if (depth > MAX_DEPTH) this.fail(`${where}: cells/structs nested more than ${MAX_DEPTH} deep`);
    if (data.length === 0) return { name: '', value: emptyDouble() }; // an empty element: MATLAB's []
    const flagsEl = this.element(data, 0, `${where} array flags`);
    if (flagsEl.type !== MI_UINT32 || flagsEl.data.length < 8) this.fail(`${where}: array flags missing`);
    const flags = this.view(flagsEl.data).getUint32(0, this.le);
    const cls = flags & 0xff;
    const complex = (flags & 0x800) !== 0;
    const logical = (flags & 0x200) !== 0;
    const dimsEl = this.element(data, flagsEl.next, `${where} dimensions`);
    if (dimsEl.type !== MI_INT32) this.fail(`${where}: dimensions are type ${dimsEl.type}, expected miINT32`);
    const dims = this.numbers(dimsEl, where);
    if (dims.length < 2 || dims.some((d) => d < 0)) this.fail(`${where}: bad dimensions [${dims.join(', ')}]`);
    const nameEl = this.element(data, dimsEl.next, `${where} name`);
    const name = new TextDecoder('latin1').decode(nameEl.data);
    const at = name ? `${where} '${name}'` : where;
    let pos = nameEl.next;
    const count = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count)) this.fail(`${at}: dimensions [${dims.join(', ')}] are too large`);

    const numeric = NUMERIC_CLASSES[cls];
    if (numeric) {
      if (complex) this.fail(`${at}: complex arrays are not supported`);
      const [className, Ctor] = numeric;
      const re = this.element(data, pos, `${at} data`);
      const size = MI_SIZE[re.type];
      if (size === undefined) this.fail(`${at}: data element type ${re.type} is not numeric`);
      // Checked before allocating: the dimensions come from the file and may claim far more than it holds.
      if (re.data.length < count * size) {
        this.fail(`${at}: ${count} values need ${count * size} bytes, the data element has ${re.data.length}`);
      }
      const colMajor = new Ctor(count);
      const v = this.view(re.data);
      const big = colMajor instanceof BigInt64Array || colMajor instanceof BigUint64Array;
      for (let i = 0; i < count; i++) {
        const x = readMi(v, re.type, i * size, this.le);
        (colMajor as unknown as (number | bigint)[])[i] = big ? BigInt(x) : Number(x);
      }
      return { name, value: { kind: 'numeric', class: className, logical, dims, data: toRowMajor(colMajor, dims) } };
    }
    if (cls === 4) {
      const el = this.element(data, pos, `${at} characters`);
      let codes: number[];
      if (el.type === MI_UTF8) codes = [...new TextDecoder('utf-8').decode(el.data)].map((c) => c.codePointAt(0)!);
      else if (el.type === MI_UTF16) codes = [...decodeUtf16(el.data, this.le)].map((c) => c.codePointAt(0)!);
      else codes = this.numbers(el, at);
      if (codes.length < count) this.fail(`${at}: ${count} characters expected, the data holds ${codes.length}`);
      const bad = codes.find((c) => !Number.isInteger(c) || c < 0 || c > 0x10ffff);
      if (bad !== undefined) this.fail(`${at}: character code ${bad} is not a Unicode code point`);
      const rm = toRowMajor(Float64Array.from(codes.slice(0, count)), dims);
      let text = '';
      for (const c of rm) text += String.fromCodePoint(c);
      return { name, value: { kind: 'char', dims, text } };
    }
    if (cls === 1) {
      // Every element is at least an 8-byte tag: a count beyond that is a lie (and would loop for nothing).
      if (count * 8 > data.length - pos) this.fail(`${at}: ${count} cells cannot fit in ${data.length - pos} bytes`);
      const colMajor: MatValue[] = [];
      for (let i = 0; i < count; i++) {
        const el = this.element(data, pos, `${at}{${i + 1}}`);
        if (el.type !== MI_MATRIX) this.fail(`${at}{${i + 1}}: element type ${el.type}, expected miMATRIX`);
        colMajor.push(this.matrix(el.data, `${at}{${i + 1}}`, depth + 1).value);
        pos = el.next;
      }
      return { name, value: { kind: 'cell', dims, cells: toRowMajor(colMajor, dims) } };
    }
    if (cls === 2) {
      const lenEl = this.element(data, pos, `${at} field name length`);
      const len = this.numbers(lenEl, at)[0] ?? 0;
      const namesEl = this.element(data, lenEl.next, `${at} field names`);
      if (len <= 0 || namesEl.data.length % len !== 0) this.fail(`${at}: bad field name length ${len}`);
      const fields: string[] = [];
      for (let p = 0; p < namesEl.data.length; p += len) {
        const raw = namesEl.data.subarray(p, p + len);
        const end = raw.indexOf(0);
        fields.push(new TextDecoder('latin1').decode(end < 0 ? raw : raw.subarray(0, end)));
      }
      pos = namesEl.next;
      const room = data.length - pos;
      if (fields.length > 0 ? count * fields.length * 8 > room : count > MAX_EMPTY) {
        this.fail(`${at}: ${count} struct elements of ${fields.length} fields cannot fit in ${room} bytes`);
      }
      const colMajor: Map<string, MatValue>[] = [];
      for (let i = 0; i < count; i++) {
        const m = new Map<string, MatValue>();
        for (const f of fields) {
          const el = this.element(data, pos, `${at}.${f}`);
          if (el.type !== MI_MATRIX) this.fail(`${at}.${f}: element type ${el.type}, expected miMATRIX`);
          m.set(f, this.matrix(el.data, `${at}.${f}`, depth + 1).value);
          pos = el.next;
        }
        colMajor.push(m);
      }
      return { name, value: { kind: 'struct', dims, fields, elements: toRowMajor(colMajor, dims) } };
    }
    return this.fail(`${at}: MATLAB class ${CLASS_NAMES[cls] ?? `#${cls}`} is not supported`);
  }
}

function emptyDouble(): MatNumeric {
  return { kind: 'numeric', class: 'double', logical: false, dims: [0, 0], data: new Float64Array(0) };
}

function readMi(v: DataView, type: number, p: number, le: boolean): number | bigint {
  switch (type) {
    case 1:
      return v.getInt8(p);
    case 2:
    case 16:
      return v.getUint8(p);
    case 3:
      return v.getInt16(p, le);
    case 4:
    case 17:
      return v.getUint16(p, le);
    case 5:
      return v.getInt32(p, le);
    case 6:
    case 18:
      return v.getUint32(p, le);
    case 7:
      return v.getFloat32(p, le);
    case 9:
      return v.getFloat64(p, le);
    case 12:
      return v.getBigInt64(p, le);
    default:
      return v.getBigUint64(p, le);
  }
}

function decodeUtf16(b: Uint8Array, le: boolean): string {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let s = '';
  for (let p = 0; p + 2 <= b.length; p += 2) s += String.fromCharCode(v.getUint16(p, le));
  return s;
}

/** Column-major (MATLAB) → row-major (C) order for any number of dimensions. */
function toRowMajor<T extends ArrayLike<unknown> & { length: number }>(src: T, dims: readonly number[]): T {
  const n = src.length;
  const nd = dims.length;
  if (n <= 1 || dims.filter((d) => d > 1).length <= 1) return src; // a vector is the same in both orders
  const out = (Array.isArray(src)
    ? new Array(n)
    : new (src.constructor as new (k: number) => unknown)(n)) as unknown as { [i: number]: unknown };
  // Walk the output in row-major order while tracking the column-major source index.
  const colStride = new Array<number>(nd);
  let s = 1;
  for (let d = 0; d < nd; d++) {
    colStride[d] = s;
    s *= dims[d]!;
  }
  const idx = new Array<number>(nd).fill(0);
  let src0 = 0;
  for (let o = 0; o < n; o++) {
    out[o] = src[src0];
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      src0 += colStride[d]!;
      if (idx[d]! < dims[d]!) break;
      src0 -= idx[d]! * colStride[d]!;
      idx[d] = 0;
    }
  }
  return out as unknown as T;
}

/** True when the 128-byte header says Level-5 (version 0x0100 and the 'IM'/'MI' endian indicator). */
export function isMat5Header(head: Uint8Array): boolean {
  if (head.length < 128) return false;
  const e0 = head[126];
  const e1 = head[127];
  if (e0 === 0x49 && e1 === 0x4d) return head[124] === 0x00 && head[125] === 0x01; // 'IM': little-endian
  if (e0 === 0x4d && e1 === 0x49) return head[124] === 0x01 && head[125] === 0x00; // 'MI': big-endian
  return false;
}

/** Parses a whole Level-5 MAT-file: variable name → value, in file order. */
export function parseMat5(buf: Uint8Array, file: string): Map<string, MatValue> {
  if (!isMat5Header(buf)) throw new FileFormatError(file, 'not a Level-5 MAT-file (no valid 128-byte MAT header)');
  const r: Reader = new Reader(file, buf[126] === 0x49);
  const vars = new Map<string, MatValue>();
  let pos = 128;
  while (pos < buf.length) {
    if (buf.length - pos < 8 && buf.subarray(pos).every((b) => b === 0)) break; // trailing padding
    const el = r.element(buf, pos, `variable #${vars.size + 1}`);
    let body = el;
    if (el.type === MI_COMPRESSED) {
      let raw: Uint8Array;
      try {
        raw = inflateSync(el.data);
      } catch (e) {
        r.fail(
          `compressed variable at byte ${pos} does not inflate (${(e as Error).message}); the file is truncated or corrupt`,
        );
      }
      body = r.element(raw, 0, `compressed variable at byte ${pos}`);
    }
    // Other top-level element types (none are written by MATLAB or scipy for variables) are skipped.
    if (body.type === MI_MATRIX) {
      const { name, value } = r.matrix(body.data, `variable at byte ${pos}`);
      vars.set(name, value);
    }
    pos = el.next;
  }
  return vars;
}

/** Reads and parses a Level-5 MAT-file. */
export function readMat5(file: string): Map<string, MatValue> {
  const buf = readInputFile(file);
  return parseMat5(buf, file);
}
