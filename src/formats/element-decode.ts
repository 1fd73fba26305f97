import { bfloat16ToFloat, FileFormatError, type HostData, halfToFloat, numel, shapeString } from './host-tensor.js';

/**
 * The element decoder every loader shares (safetensors, npy, PyTorch storages): raw little- or big-endian
 * bytes of a storage dtype, read through an arbitrary strided view, into a fresh C-order array.
 */

/** Element types the loaders understand (storage dtypes, before widening). */
export type ElementType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u16' | 'u8' | 'bool';

export const ELEMENT_SIZE: Readonly<Record<ElementType, number>> = {
  f64: 8,
  f32: 4,
  f16: 2,
  bf16: 2,
  i64: 8,
  i32: 4,
  i16: 2,
  i8: 1,
  u16: 2,
  u8: 1,
  bool: 1,
};

/** The most elements one decoded tensor may have (2^31 − 1, also V8's limit for float32 arrays on 32-bit hosts). */
const MAX_ELEMENTS = 2 ** 31 - 1;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A fresh, aligned copy of bytes [begin, end) (Buffer#slice would return a view). */
function copyBytes(b: Uint8Array, begin: number, end: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(end - begin);
  out.set(b.subarray(begin, end));
  return out;
}

/** C-order (row-major) strides, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d]!;
  }
  return st;
}

/**
 * Read a strided view of raw element data into a new C-order array: floating types → Float32Array,
 * i64 → BigInt64Array, other integers → Int32Array, u8/bool → Uint8Array.
 * `offset` and `strides` count elements of `type` from the start of `bytes`. Throws FileFormatError
 * (naming `file` and `what`) when the view reaches past the data.
 */
export function decodeStrided(
  bytes: Uint8Array,
  type: ElementType,
  littleEndian: boolean,
  offset: number,
  shape: readonly number[],
  strides: readonly number[],
  file: string,
  what: string,
): HostData {
  const size = ELEMENT_SIZE[type];
  const nd = shape.length;
  if (strides.length !== nd) {
    throw new FileFormatError(file, `${what}: ${strides.length} strides for a ${nd}-d shape ${shapeString(shape)}`);
  }
  for (let d = 0; d < nd; d++) {
    if (!Number.isSafeInteger(shape[d]) || shape[d]! < 0 || !Number.isSafeInteger(strides[d]) || strides[d]! < 0) {
      throw new FileFormatError(file, `${what}: invalid shape ${shapeString(shape)} / strides ${shapeString(strides)}`);
    }
  }
  if (!Number.isSafeInteger(offset) || offset < 0) throw new FileFormatError(file, `${what}: invalid offset ${offset}`);
  const n = numel(shape);
  if (n > 0) {
    let last = offset;
    for (let d = 0; d < nd; d++) last += (shape[d]! - 1) * strides[d]!;
    const available = Math.floor(bytes.length / size);
    if (last >= available) {
      throw new FileFormatError(
        file,
        `${what}: the view (offset ${offset}, shape ${shapeString(shape)}, strides ${shapeString(strides)}) needs ${last + 1} elements, but the data holds only ${available}; the file is truncated or corrupt`,
      );
    }
  }
  // A view with zero strides repeats its storage, so a small file can describe a huge tensor: refuse sizes no
  // typed array can hold instead of failing inside the allocation (or exhausting memory).
  if (n > MAX_ELEMENTS) {
    throw new FileFormatError(
      file,
      `${what}: shape ${shapeString(shape)} has ${n} elements, more than one array can hold (${MAX_ELEMENTS})`,
    );
  }
  const cs = contiguousStrides(shape);
  const contiguous = shape.every((s, d) => s <= 1 || strides[d] === cs[d]);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = littleEndian;

  if (contiguous) {
    const b0 = offset * size;
    const b1 = b0 + n * size;
    if (type === 'u8' || type === 'bool') return copyBytes(bytes, b0, b1);
    if (type === 'f32' && le === LITTLE_ENDIAN_HOST) return new Float32Array(copyBytes(bytes, b0, b1).buffer);
    if (type === 'i64' && le === LITTLE_ENDIAN_HOST) return new BigInt64Array(copyBytes(bytes, b0, b1).buffer);
    if (type === 'i32' && le === LITTLE_ENDIAN_HOST) return new Int32Array(copyBytes(bytes, b0, b1).buffer);
  }

  // Visit every output position i (C order) with the element index e it reads, without an index array.
  const walk = (visit: (i: number, e: number) => void) => {
    if (contiguous) {
      for (let i = 0; i < n; i++) visit(i, offset + i);
      return;
    }
    const counter = new Array<number>(nd).fill(0);
    let src = offset;
    for (let i = 0; i < n; i++) {
      visit(i, src);
      for (let d = nd - 1; d >= 0; d--) {
        counter[d]!++;
        src += strides[d]!;
        if (counter[d]! < shape[d]!) break;
        src -= strides[d]! * shape[d]!;
        counter[d] = 0;
      }
    }
  };

  switch (type) {
    case 'i64': {
      const out = new BigInt64Array(n);
      walk((i, e) => {
        out[i] = dv.getBigInt64(e * 8, le);
      });
      return out;
    }
    case 'u8':
    case 'bool': {
      const out = new Uint8Array(n);
      walk((i, e) => {
        out[i] = bytes[e]!;
      });
      return out;
    }
    case 'f32':
    case 'f64':
    case 'f16':
    case 'bf16': {
      const out = new Float32Array(n);
      const read = FLOAT_READERS[type];
      walk((i, e) => {
        out[i] = read(dv, e, le);
      });
      return out;
    }
    default: {
      const out = new Int32Array(n);
      const read = INT_READERS[type];
      walk((i, e) => {
        out[i] = read(dv, e, le);
      });
      return out;
    }
  }
}

type Reader = (dv: DataView, e: number, le: boolean) => number;
const FLOAT_READERS: Record<'f32' | 'f64' | 'f16' | 'bf16', Reader> = {
  f32: (dv, e, le) => dv.getFloat32(e * 4, le),
  f64: (dv, e, le) => dv.getFloat64(e * 8, le),
  f16: (dv, e, le) => halfToFloat(dv.getUint16(e * 2, le)),
  bf16: (dv, e, le) => bfloat16ToFloat(dv.getUint16(e * 2, le)),
};
const INT_READERS: Record<'i32' | 'i16' | 'u16' | 'i8', Reader> = {
  i32: (dv, e, le) => dv.getInt32(e * 4, le),
  i16: (dv, e, le) => dv.getInt16(e * 2, le),
  u16: (dv, e, le) => dv.getUint16(e * 2, le),
  i8: (dv, e) => dv.getInt8(e),
};
