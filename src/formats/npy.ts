import { contiguousStrides, decodeStrided, ELEMENT_SIZE, type ElementType } from './element-decode.js';
import { FileFormatError, type HostTensor, numel, readInputFile, shapeString } from './host-tensor.js';

/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): the magic `\x93NUMPY`, a version, a header length,
 * a Python-literal header `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, then the raw data.
 *
 */

// --- .npy header ------------------------------------------------------------------------------------------------

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** True when the bytes start with the .npy magic. */
export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && MAGIC.every((b, i) => bytes[i] === b);
}

type PyLiteral = string | number | boolean | null | PyLiteral[] | Map<string, PyLiteral>;

/** A tiny parser for the Python literals a .npy header holds (dict, tuple, list, str, int, True/False/None). */
function parsePyLiteral(text: string): PyLiteral {
  let i = 0;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at position ${i} of the header`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const value = (): PyLiteral => {
    ws();
    const c = text[i];
    if (c === undefined) return fail('unexpected end');
    if (c === '{') {
      i++;
      const m = new Map<string, PyLiteral>();
      for (;;) {
        ws();
        if (text[i] === '}') {
          i++;
          return m;
        }
        const k = value();
        if (typeof k !== 'string') fail('dict key is not a string');
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        m.set(k as string, value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: PyLiteral[] = [];
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return items;
        }
        items.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      i++;
      let s = '';
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\') i++;
        s += text[i] ?? '';
        i++;
      }
      if (text[i] !== c) fail('unterminated string');
      i++;
      return s;
    }
    const m = /^(-?\d+)L?|^(True|False|None)/.exec(text.slice(i));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    if (m[2] === 'True') return true;
    if (m[2] === 'False') return false;
    if (m[2] === 'None') return null;
    return Number(m[1]);
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

function npyElementType(descr: string): { type: ElementType; little: boolean } | undefined {
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(descr);
  if (!m) return undefined;
  const little = m[1] !== '>';
  const key = `${m[2]}${m[3]}`;
  const map: Record<string, ElementType> = {
    f8: 'f64',
    f4: 'f32',
    f2: 'f16',
    i8: 'i64',
    i4: 'i32',
    i2: 'i16',
    i1: 'i8',
    u2: 'u16',
    u1: 'u8',
    b1: 'bool',
  };
  const type = map[key];
  return type ? { type, little } : undefined;
}

/** Decode a .npy file's bytes. Floating data always comes back as Float32Array, in C order. */
export function parseNpy(bytes: Uint8Array, file: string): HostTensor {
  if (!isNpy(bytes)) throw new FileFormatError(file, 'not a .npy file (missing the \\x93NUMPY magic)');
  if (bytes.length < 10) throw new FileFormatError(file, 'truncated .npy header');
  const major = bytes[6]!;
  const minor = bytes[7]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new FileFormatError(file, 'truncated .npy header');
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new FileFormatError(file, `unsupported .npy format version ${major}.${minor} (expected 1.0, 2.0 or 3.0)`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > bytes.length) {
    throw new FileFormatError(
      file,
      `truncated .npy header: ${headerLen} bytes announced, ${bytes.length - headerStart} present`,
    );
  }
  const headerBytes = bytes.subarray(headerStart, dataStart);
  const text =
    major === 3 ? new TextDecoder('utf-8').decode(headerBytes) : String.fromCharCode(...Array.from(headerBytes));
  let header: PyLiteral;
  try {
    header = parsePyLiteral(text);
  } catch (e) {
    throw new FileFormatError(file, `invalid .npy header ${JSON.stringify(text.trim())}: ${(e as Error).message}`);
  }
  if (!(header instanceof Map)) throw new FileFormatError(file, '.npy header is not a dict');
  const descr = header.get('descr');
  const fortran = header.get('fortran_order');
  const shape = header.get('shape');
  if (typeof descr !== 'string') {
    throw new FileFormatError(
      file,
      `unsupported .npy dtype ${JSON.stringify(descr)} (structured arrays are not supported)`,
    );
  }
  const et = npyElementType(descr);
  if (!et) {
    const hint = descr.includes('O') ? ' (object arrays need pickle and are not supported)' : '';
    throw new FileFormatError(
      file,
      `unsupported .npy dtype '${descr}'${hint}; expected one of <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1 (or big-endian)`,
    );
  }
  if (typeof fortran !== 'boolean') throw new FileFormatError(file, '.npy header: fortran_order is not True/False');
  if (!Array.isArray(shape) || !shape.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0)) {
    throw new FileFormatError(file, `.npy header: invalid shape ${JSON.stringify(shape)}`);
  }
  const dims = shape as number[];
  const n = numel(dims);
  const size = ELEMENT_SIZE[et.type];
  const data = bytes.subarray(dataStart);
  if (data.length < n * size) {
    throw new FileFormatError(
      file,
      `truncated .npy data: ${descr} ${shapeString(dims)} needs ${n * size} bytes, the file holds ${data.length}`,
    );
  }
  // NumPy writes exactly the array's bytes. More means the header's shape or dtype does not describe the data
  // (a corrupt header would otherwise give a silently smaller array).
  if (data.length > n * size) {
    throw new FileFormatError(
      file,
      `.npy data is ${data.length} bytes, but ${descr} ${shapeString(dims)} needs ${n * size}; the header does not match the data`,
    );
  }
  // Fortran order: the first axis varies fastest.
  const strides = fortran ? contiguousStrides([...dims].reverse()).reverse() : contiguousStrides(dims);
  return { shape: dims, data: decodeStrided(data, et.type, et.little, 0, dims, strides, file, `.npy ${descr} data`) };
}

export function readNpy(file: string): HostTensor {
  const buf = readInputFile(file);
  return parseNpy(buf, file);
}

/** Python's repr of a shape tuple: (), (5,), (3, 4). */
function shapeRepr(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/**
 * Encode a float32 array as a version 1.0 .npy file, byte-for-byte as NumPy (≥ 1.22) writes it: the header
 * dict with sorted keys, growth padding, and space padding so the data starts at a multiple of 64.
 */
export function encodeNpy(t: { shape: readonly number[]; data: Float32Array }): Uint8Array {
  const n = numel(t.shape);
  if (t.data.length !== n)
    throw new Error(`encodeNpy: shape ${shapeString(t.shape)} needs ${n} values, got ${t.data.length}`);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeRepr(t.shape)}, }`;
  // NumPy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
  if (t.shape.length > 0) header += ' '.repeat(Math.max(0, 21 - String(t.shape[0]).length));
  // As NumPy: a full 64 bytes of padding when the header is already aligned.
  const pad = 64 - ((6 + 2 + 2 + header.length + 1) % 64);
  header += `${' '.repeat(pad)}\n`;
  if (header.length > 0xffff) throw new Error('encodeNpy: header too long for format 1.0');
  const out = new Uint8Array(10 + header.length + n * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const dv = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < n; i++) dv.setFloat32(4 * i, t.data[i]!, true);
  return out;
}
