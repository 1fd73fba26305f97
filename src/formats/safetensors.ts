import { contiguousStrides, decodeStrided, ELEMENT_SIZE, type ElementType } from './element-decode.js';
import { FileFormatError, type HostData, numel, readInputFile, type StateDict } from './host-tensor.js';

/**
 * safetensors: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the raw little-endian tensor bytes (offsets relative to the end of the header).
 * Floating dtypes are widened to float32 (F64 kept as float64 when `keepF64`), integers to Int32/BigInt64.
 */

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

export function readSafetensors(file: string, opts: { keepF64?: boolean } = {}): SafetensorsFile {
  return parseSafetensors(readInputFile(file), file, opts);
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
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (
        entry === null ||
        typeof entry !== 'object' ||
        Array.isArray(entry) ||
        !Object.values(entry).every((v) => typeof v === 'string')
      ) {
        throw new FileFormatError(file, '__metadata__ is not a JSON object of strings');
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new FileFormatError(
        file,
        `tensor '${name}': expected {dtype, shape, data_offsets}, found ${JSON.stringify(entry)}`,
      );
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = String(e.dtype);
    const item = Object.hasOwn(ELEMENT_TYPE, dtype) ? ELEMENT_SIZE[ELEMENT_TYPE[dtype]!] : undefined;
    if (item === undefined) throw new FileFormatError(file, `tensor '${name}': unsupported dtype ${dtype}`);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      throw new FileFormatError(file, `tensor '${name}': invalid shape ${JSON.stringify(e.shape)}`);
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0)) {
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
    entries.push({ name, dtype, shape, begin, end });
  }
  // As the reference implementation validates: the tensors tile the data exactly, in offset order, with no
  // overlap, gap or unclaimed tail. A header whose offsets overlap could otherwise hand out the same bytes twice.
  const ordered = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (let i = 0; i < ordered.length; i++) {
    const t = ordered[i]!;
    if (t.begin < at) {
      throw new FileFormatError(
        file,
        `tensor '${t.name}': data_offsets [${t.begin}, ${t.end}] overlap tensor '${ordered[i - 1]!.name}' (which ends at ${at})`,
      );
    }
    if (t.begin > at) {
      throw new FileFormatError(
        file,
        `tensor '${t.name}': data_offsets start at ${t.begin}, leaving bytes ${at}…${t.begin - 1} unclaimed`,
      );
    }
    at = t.end;
  }
  if (at !== dataLen) {
    throw new FileFormatError(
      file,
      `the header's tensors cover ${at} bytes of data, but the file holds ${dataLen} after the header`,
    );
  }
  const tensors: StateDict = new Map();
  for (const t of entries) {
    tensors.set(t.name, {
      shape: t.shape,
      data: decode(t.dtype, buf, dataStart + t.begin, t.shape, opts.keepF64 ?? false, file, t.name),
    });
  }
  return { tensors, metadata };
}

const ELEMENT_TYPE: Record<string, ElementType> = {
  F64: 'f64',
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I64: 'i64',
  I32: 'i32',
  I16: 'i16',
  I8: 'i8',
  U8: 'u8',
  BOOL: 'bool',
};

function decode(
  dtype: string,
  buf: Uint8Array,
  start: number,
  shape: number[],
  keepF64: boolean,
  file: string,
  name: string,
): HostData {
  const type = ELEMENT_TYPE[dtype]!;
  if (type === 'f64' && keepF64) {
    const n = numel(shape);
    const dv = new DataView(buf.buffer, buf.byteOffset + start, n * 8);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
    return out;
  }
  const bytes = buf.subarray(start, start + numel(shape) * ELEMENT_SIZE[type]);
  return decodeStrided(bytes, type, true, 0, shape, contiguousStrides(shape), file, `tensor '${name}'`);
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
