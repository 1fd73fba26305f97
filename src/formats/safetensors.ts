import { readFileSync } from 'node:fs';
import { bfloat16ToFloat, FileFormatError, type HostData, halfToFloat, numel, type StateDict } from './host-tensor.js';

/**
 * safetensors: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the raw little-endian tensor bytes (offsets relative to the end of the header).
 * Floating dtypes are widened to float32 (F64 kept as float64 when `keepF64`), integers to Int32/BigInt64.
 */
const ITEM_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

export function readSafetensors(file: string, opts: { keepF64?: boolean } = {}): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new FileFormatError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseSafetensors(buf, file, opts);
}

export function parseSafetensors(buf: Uint8Array, file: string, opts: { keepF64?: boolean } = {}): SafetensorsFile {
  if (buf.length < 8)
    throw new FileFormatError(file, `not a safetensors file: ${buf.length} bytes, expected an 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(buf.length - 8)) {
    throw new FileFormatError(
      file,
      `not a safetensors file: header length ${headerLen} exceeds the file size ${buf.length}`,
    );
  }
  const hl = Number(headerLen);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + hl)));
  } catch {
    throw new FileFormatError(file, 'not a safetensors file: the header is not valid JSON');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new FileFormatError(file, 'not a safetensors file: the header is not a JSON object');
  }
  const dataStart = 8 + hl;
  const dataLen = buf.length - dataStart;
  const tensors: StateDict = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = String(e.dtype);
    const item = ITEM_SIZE[dtype];
    if (item === undefined) throw new FileFormatError(file, `tensor '${name}': unsupported dtype ${dtype}`);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isInteger(s) && s >= 0)) {
      throw new FileFormatError(file, `tensor '${name}': invalid shape ${JSON.stringify(e.shape)}`);
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new FileFormatError(file, `tensor '${name}': invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const n = numel(shape);
    if (end < begin || end - begin !== n * item) {
      throw new FileFormatError(
        file,
        `tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${n * item}`,
      );
    }
    if (end > dataLen) {
      throw new FileFormatError(
        file,
        `tensor '${name}': data_offsets end ${end} is past the end of the data (${dataLen} bytes); the file is truncated`,
      );
    }
    tensors.set(name, { shape, data: decode(dtype, buf, dataStart + begin, n, opts.keepF64 ?? false) });
  }
  return { tensors, metadata };
}

function decode(dtype: string, buf: Uint8Array, start: number, n: number, keepF64: boolean): HostData {
  const dv = new DataView(buf.buffer, buf.byteOffset + start, n * (ITEM_SIZE[dtype] ?? 1));
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case 'F64': {
      const out = keepF64 ? new Float64Array(n) : new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case 'I64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getBigInt64(8 * i, true);
      return out;
    }
    case 'I32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case 'I16': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
      return out;
    }
    case 'I8': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      return out;
    }
    default: {
      // U8, BOOL
      return new Uint8Array(buf.subarray(start, start + n));
    }
  }
}

/** Write float32 tensors as safetensors (used by scripts that produce shipped weights). */
export function encodeSafetensors(tensors: StateDict, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of tensors) {
    const f32 = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
    const bytes = new Uint8Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength));
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8 !== 0) json += ' ';
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let p = 8 + jsonBytes.length;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
