/**
 * Mutation fuzzing of the binary readers: small valid files of every format are mutated (bit flips, byte
 * overwrites, truncations, insertions, deletions, integer fields set to lying values, format-aware header lies)
 * with a seeded RNG, and each reader must either return well-formed data (the original, or other values when the
 * mutation hit raw data that has no checksum) or throw a FileFormatError naming the file. Runs inside a worker
 * (fuzz-worker.ts) so that a hang can be stopped from outside.
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { openGtsegs } from '../../src/datasets/gtsegs.js';
import { writeGtsegsMat } from '../../src/datasets/gtsegs-writer.js';
import { ExplanationWriter, readExplanations } from '../../src/formats/expl-hdf5.js';
import { FileFormatError, numel, type StateDict } from '../../src/formats/host-tensor.js';
import { type MatValue, parseMat5 } from '../../src/formats/mat5.js';
import { encodeNpy, parseNpy } from '../../src/formats/npy.js';
import { parseWeights } from '../../src/formats/weights.js';
import { Rng } from '../../src/util/random.js';
import { npyWithHeader } from './npy-writer.js';
import { legacyTorchFileWithView, PickleWriter, torchTensor } from './pickle-writer.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');

export interface Seed {
  name: string;
  bytes: Uint8Array;
}

export interface FuzzTarget {
  /** File extension the mutated file gets (the readers sniff content; the name is only used in messages). */
  ext: string;
  seeds(): Promise<Seed[]>;
  /** Reads the file (from `bytes` or from disk at `file`) and returns its content; throws on bad input. */
  read(bytes: Uint8Array, file: string): unknown | Promise<unknown>;
  /** Whether the reader needs the bytes on disk. */
  onDisk?: boolean;
  /** Why the content is malformed, or null when it is well-formed. */
  check(value: unknown): string | null;
  /** Format-aware mutations (header lies) besides the generic ones. */
  lie?(rng: Rng, bytes: Uint8Array): { bytes: Uint8Array; desc: string } | null;
}

// --- mutations ------------------------------------------------------------------------------------------------

const INTERESTING = [
  0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
];

function pos(rng: Rng, n: number): number {
  // Headers sit at the start (and zip directories at the end): aim there more often than at raw data.
  const r = rng.next();
  if (r < 0.45) return rng.int(0, Math.min(n, 512));
  if (r < 0.65) return rng.int(Math.max(0, n - 512), n);
  return rng.int(0, n);
}

function writeInt(b: Uint8Array, at: number, width: number, value: number, little: boolean): void {
  let v = BigInt(Math.floor(value));
  for (let k = 0; k < width && at + k < b.length; k++) {
    b[little ? at + k : at + width - 1 - k] = Number(v & 0xffn);
    v >>= 8n;
  }
}

export function mutate(rng: Rng, src: Uint8Array, target: FuzzTarget): { bytes: Uint8Array; desc: string } {
  const n = src.length;
  const kind = rng.int(0, target.lie ? 9 : 8);
  const b = Uint8Array.from(src);
  switch (kind) {
    case 0: {
      const k = rng.int(1, 5);
      const at: number[] = [];
      for (let i = 0; i < k; i++) {
        const p = pos(rng, n);
        b[p]! ^= 1 << rng.int(0, 8);
        at.push(p);
      }
      return { bytes: b, desc: `flip bits at ${at.join(',')}` };
    }
    case 1: {
      const p = pos(rng, n);
      const k = rng.int(1, 9);
      for (let i = 0; i < k && p + i < n; i++) {
        b[p + i] = rng.next() < 0.5 ? rng.int(0, 256) : INTERESTING[rng.int(0, 8)]! & 0xff;
      }
      return { bytes: b, desc: `overwrite ${k} bytes at ${p}` };
    }
    case 2: {
      const r = rng.next();
      const len =
        r < 0.3 ? rng.int(0, Math.min(n, 256)) : r < 0.6 ? n - rng.int(1, Math.min(n, 64) + 1) : rng.int(0, n);
      return { bytes: src.slice(0, len), desc: `truncate to ${len}` };
    }
    case 3: {
      const p = pos(rng, n);
      const k = rng.int(1, 17);
      const ins = Uint8Array.from({ length: k }, () => rng.int(0, 256));
      const out = new Uint8Array(n + k);
      out.set(src.subarray(0, p));
      out.set(ins, p);
      out.set(src.subarray(p), p + k);
      return { bytes: out, desc: `insert ${k} bytes at ${p}` };
    }
    case 4: {
      const p = pos(rng, n);
      const k = Math.min(rng.int(1, 17), n - p);
      const out = new Uint8Array(n - k);
      out.set(src.subarray(0, p));
      out.set(src.subarray(p + k), p);
      return { bytes: out, desc: `delete ${k} bytes at ${p}` };
    }
    case 5:
    case 6: {
      // An integer field (a length, an offset, a count) that lies.
      const width = [2, 4, 8][rng.int(0, 3)]!;
      const p = pos(rng, n) & ~(width - 1);
      const r = rng.next();
      const value =
        r < 0.4 ? INTERESTING[rng.int(0, INTERESTING.length)]! : r < 0.7 ? n + rng.int(-16, 17) : rng.int(0, 2 * n);
      const little = rng.next() < 0.85;
      writeInt(b, p, width, Math.max(0, value), little);
      return { bytes: b, desc: `u${8 * width}${little ? 'le' : 'be'} at ${p} := ${value}` };
    }
    case 7: {
      // Duplicate a chunk of the file over another place.
      const from = rng.int(0, n);
      const to = pos(rng, n);
      const k = rng.int(1, 65);
      b.set(src.subarray(from, Math.min(n, from + k)).subarray(0, Math.max(0, n - to)), to);
      return { bytes: b, desc: `copy ${k} bytes from ${from} to ${to}` };
    }
    default:
      return target.lie!(rng, src) ?? mutate(rng, src, { ...target, lie: undefined });
  }
}

// --- well-formedness checks -----------------------------------------------------------------------------------

function checkStateDict(v: unknown): string | null {
  if (!(v instanceof Map)) return 'not a Map';
  if (v.size === 0) return 'an empty state dict';
  for (const [k, t] of v as StateDict) {
    if (typeof k !== 'string') return `key ${String(k)} is not a string`;
    if (!Array.isArray(t.shape) || !t.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) return `${k}: bad shape`;
    if (!ArrayBuffer.isView(t.data)) return `${k}: data is not a typed array`;
    if ((t.data as ArrayLike<unknown>).length !== numel(t.shape)) return `${k}: ${t.data.length} values for ${t.shape}`;
  }
  return null;
}

function checkMat(v: MatValue, where: string): string | null {
  const count = v.dims.reduce((a, b) => a * b, 1);
  if (!v.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) return `${where}: bad dims`;
  if (v.kind === 'numeric') return v.data.length === count ? null : `${where}: ${v.data.length} values for ${v.dims}`;
  if (v.kind === 'char') return typeof v.text === 'string' ? null : `${where}: text`;
  if (v.kind === 'cell') {
    if (v.cells.length !== count) return `${where}: ${v.cells.length} cells for ${v.dims}`;
    for (const c of v.cells) {
      const p = checkMat(c, `${where}{}`);
      if (p) return p;
    }
    return null;
  }
  if (v.elements.length !== count) return `${where}: ${v.elements.length} elements for ${v.dims}`;
  for (const e of v.elements) {
    for (const f of v.fields) {
      const c = e.get(f);
      if (!c) return `${where}.${f} missing`;
      const p = checkMat(c, `${where}.${f}`);
      if (p) return p;
    }
  }
  return null;
}

// --- seeds ----------------------------------------------------------------------------------------------------

function f32(xs: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(xs).buffer);
}

/** A safetensors file with several dtypes, built by hand (encodeSafetensors writes float32 only). */
function safetensorsSeed(): Uint8Array {
  const parts: [string, string, number[], Uint8Array][] = [
    ['a', 'F32', [2, 3], f32([1, -2, 3.5, 0, 1e-3, 7])],
    ['b', 'F16', [4], new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7c00]).buffer)],
    ['c', 'I64', [2], new Uint8Array(new BigInt64Array([5n, -1n]).buffer)],
    ['d', 'BOOL', [3], Uint8Array.of(1, 0, 1)],
    ['e', 'BF16', [2, 2], new Uint8Array(new Uint16Array([0x3f80, 0x4000, 0xbf80, 0]).buffer)],
    ['z', 'F32', [0, 4], new Uint8Array(0)],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, dtype, shape, data] of parts) {
    header[name] = { dtype, shape, data_offsets: [off, off + data.length] };
    off += data.length;
  }
  return safetensorsWith(header, Uint8Array.from(parts.flatMap((p) => [...p[3]])));
}

function safetensorsWith(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Header lies for safetensors: the JSON stays valid but its numbers do not describe the data. */
function safetensorsLie(rng: Rng, src: Uint8Array): { bytes: Uint8Array; desc: string } | null {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const hl = Number(dv.getBigUint64(0, true));
  if (rng.next() < 0.3) {
    const b = Uint8Array.from(src);
    const v = [hl - 1, hl + 1, hl + 8, src.length, 0, 2 ** 40, hl - 8][rng.int(0, 7)]!;
    new DataView(b.buffer).setBigUint64(0, BigInt(Math.max(0, v)), true);
    return { bytes: b, desc: `header length := ${v}` };
  }
  const header = JSON.parse(new TextDecoder().decode(src.subarray(8, 8 + hl))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = names[rng.int(0, names.length)]!;
  const t = header[name]!;
  const other = header[names[rng.int(0, names.length)]!]!;
  const k = rng.int(0, 7);
  let desc: string;
  if (k === 0) {
    t.data_offsets = [...other.data_offsets];
    desc = `${name} takes the offsets of another tensor`;
  } else if (k === 1) {
    const d = rng.int(1, 9);
    t.data_offsets = [t.data_offsets[0] + d, t.data_offsets[1] + d];
    desc = `${name} offsets shifted by ${d}`;
  } else if (k === 2) {
    t.data_offsets = [t.data_offsets[0], t.data_offsets[1] + rng.int(1, 100)];
    desc = `${name} end grows`;
  } else if (k === 3) {
    t.shape = t.shape.map((s) => s + rng.int(-1, 2));
    desc = `${name} shape changed to ${t.shape}`;
  } else if (k === 4) {
    t.dtype = ['F32', 'F16', 'I32', 'U8', 'F64', 'I8', 'X9'][rng.int(0, 7)]!;
    desc = `${name} dtype := ${t.dtype}`;
  } else if (k === 5) {
    (t as unknown as Record<string, unknown>)[['dtype', 'shape', 'data_offsets'][rng.int(0, 3)]!] = [
      null,
      -1,
      'x',
      [1.5, 2],
      [],
      {},
    ][rng.int(0, 6)];
    desc = `${name} field replaced by junk`;
  } else {
    t.data_offsets = [t.data_offsets[0], 2 ** 53 + 2];
    desc = `${name} end := 2^53 + 2`;
  }
  return { bytes: safetensorsWith(header, src.subarray(8 + hl)), desc };
}

function npySeeds(): Seed[] {
  const be = new Uint8Array(48);
  for (let i = 0; i < 6; i++) new DataView(be.buffer).setFloat64(8 * i, i - 2.5, false);
  return [
    { name: 'f4', bytes: encodeNpy({ shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 3) }) },
    { name: 'f8-fortran-be', bytes: npyWithHeader("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", be) },
    {
      name: 'i8',
      bytes: npyWithHeader(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
        new Uint8Array(new BigInt64Array([1n, -2n, 3n]).buffer),
      ),
    },
    {
      name: 'b1',
      bytes: npyWithHeader("{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", Uint8Array.of(1, 0, 0, 1)),
    },
    {
      name: 'f2-v2',
      bytes: npyWithHeader(
        "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }",
        new Uint8Array(new Uint16Array([0x3c00, 0x4000, 0xc000, 0]).buffer),
        2,
      ),
    },
  ];
}

function npzSeeds(): Seed[] {
  const files = {
    'w.npy': encodeNpy({ shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }),
    'b/bias.npy': encodeNpy({ shape: [3], data: Float32Array.of(-1, 0, 1) }),
  };
  return [
    { name: 'stored', bytes: zipSync(files, { level: 0 }) },
    { name: 'deflated', bytes: zipSync(files, { level: 6 }) },
  ];
}

function torchZipSeed(): Uint8Array {
  const p = new PickleWriter().op(0x80, 2).global('collections', 'OrderedDict').op(0x29, 0x52).mark();
  p.str('w');
  torchTensor(p, 'FloatStorage', '0', 6, 0, [2, 3], [3, 1]);
  p.str('t');
  torchTensor(p, 'FloatStorage', '0', 6, 0, [3, 2], [1, 3]);
  p.str('h');
  torchTensor(p, 'HalfStorage', '1', 4, 1, [3], [1]);
  p.str('n');
  torchTensor(p, 'LongStorage', '2', 2, 0, [2], [1]);
  p.op(0x75).stop();
  return zipSync(
    {
      'ckpt/data.pkl': p.bytes(),
      'ckpt/byteorder': new TextEncoder().encode('little'),
      'ckpt/data/0': f32([0, 1, 2, 3, 4, 5]),
      'ckpt/data/1': new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7c00]).buffer),
      'ckpt/data/2': new Uint8Array(new BigInt64Array([7n, -7n]).buffer),
      'ckpt/version': new TextEncoder().encode('3\n'),
    },
    { level: 0 },
  );
}

function torchLegacySeed(): Uint8Array {
  return legacyTorchFileWithView();
}

/** Zip lies: the size and offset fields of the local headers and the central directory. */
function zipLie(rng: Rng, src: Uint8Array): { bytes: Uint8Array; desc: string } | null {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const fields: [number, string][] = [];
  for (let p = 0; p + 46 <= src.length; p++) {
    const sig = dv.getUint32(p, true);
    if (sig === 0x04034b50) fields.push([p + 18, 'local csize'], [p + 22, 'local size'], [p + 26, 'local name length']);
    if (sig === 0x02014b50) {
      fields.push([p + 16, 'crc'], [p + 20, 'csize'], [p + 24, 'size'], [p + 28, 'name length'], [p + 42, 'offset']);
    }
  }
  for (let p = src.length - 22; p >= 0 && p > src.length - 100; p--) {
    if (dv.getUint32(p, true) === 0x06054b50)
      fields.push([p + 10, 'count'], [p + 12, 'cd size'], [p + 16, 'cd offset']);
  }
  if (fields.length === 0) return null;
  const [at, what] = fields[rng.int(0, fields.length)]!;
  const b = Uint8Array.from(src);
  const old = what.includes('name length') || what === 'count' ? dv.getUint16(at, true) : dv.getUint32(at, true);
  const v = [old + 1, old - 1, old + 64, 0, 0xffffffff, src.length][rng.int(0, 6)]!;
  writeInt(b, at, what.includes('name length') || what === 'count' ? 2 : 4, Math.max(0, v), true);
  return { bytes: b, desc: `zip ${what} at ${at}: ${old} := ${v}` };
}

// --- targets --------------------------------------------------------------------------------------------------

const weightsTarget = (ext: string, seeds: () => Seed[], lie?: FuzzTarget['lie']): FuzzTarget => ({
  ext,
  seeds: async () => seeds(),
  read: (bytes, file) => parseWeights(bytes, file),
  check: checkStateDict,
  lie,
});

async function gtsegsV73Seed(): Promise<Uint8Array> {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'fuzz-seed-'));
  try {
    const file = path.join(dir, 'seed.mat');
    const item = (w: number, h: number, k: number) => ({
      image: { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * k) & 0xff) },
      mask: { width: w, height: h, data: Uint8Array.from({ length: w * h }, (_, i) => (i % 3 === 0 ? 1 : 0)) },
      id: `n0000000${k}_1`,
    });
    await writeGtsegsMat(file, [item(5, 4, 1), item(3, 6, 2)]);
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function explSeed(): Promise<Uint8Array> {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'fuzz-seed-'));
  try {
    const file = path.join(dir, 'results.hdf5');
    const w = await ExplanationWriter.create(file, { height: 4, width: 4, attrs: { method: 'fuzz', rows: [1, 2] } });
    w.append([
      {
        vis: Float32Array.from({ length: 16 }, (_, i) => i),
        image: new Float32Array(48).fill(0.5),
        target: 3,
        index: 0,
      },
      { vis: new Float32Array(16).fill(-1), image: new Float32Array(48).fill(0.25), target: 7, index: 1 },
    ]);
    w.close();
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const TARGETS: Record<string, FuzzTarget> = {
  safetensors: weightsTarget('safetensors', () => [{ name: 'dtypes', bytes: safetensorsSeed() }], safetensorsLie),
  npy: {
    ext: 'npy',
    seeds: async () => npySeeds(),
    read: (bytes, file) => parseNpy(bytes, file),
    check: (v) => checkStateDict(new Map([['x', v as never]])),
  },
  npz: weightsTarget('npz', npzSeeds, zipLie),
  'pth-zip': weightsTarget('pth', () => [{ name: 'zip', bytes: torchZipSeed() }], zipLie),
  'pth-legacy': weightsTarget('pth', () => [{ name: 'legacy', bytes: torchLegacySeed() }]),
  mat5: {
    ext: 'mat',
    seeds: async () =>
      ['gtsegs-level5.mat', 'gtsegs-level5-z.mat', 'gtsegs-level5-255.mat'].map((f) => ({
        name: f,
        bytes: fs.readFileSync(path.join(FIXTURES, f)),
      })),
    read: async (bytes, file) => {
      const vars = parseMat5(bytes, file);
      // …and what the seg benchmark does with it: every item through the gtsegs reader.
      const ds = await openGtsegs(file);
      try {
        return { vars, items: Array.from({ length: ds.length }, (_, i) => ds.get(i)) };
      } finally {
        ds.close();
      }
    },
    onDisk: true,
    check: (v) => {
      const { vars, items } = v as { vars: Map<string, MatValue>; items: unknown[] };
      for (const [k, m] of vars) {
        const p = checkMat(m, k);
        if (p) return p;
      }
      return checkGtsegsItems(items);
    },
  },
  'hdf5-gtsegs': {
    ext: 'mat',
    seeds: async () => [{ name: 'v7.3', bytes: await gtsegsV73Seed() }],
    read: async (_bytes, file) => {
      const ds = await openGtsegs(file);
      try {
        return Array.from({ length: ds.length }, (_, i) => ds.get(i));
      } finally {
        ds.close();
      }
    },
    onDisk: true,
    check: checkGtsegsItems,
  },
  'hdf5-expl': {
    ext: 'hdf5',
    seeds: async () => [{ name: 'results', bytes: await explSeed() }],
    read: async (_bytes, file) => {
      const r = await readExplanations(file);
      try {
        return { attrs: r.attrs, indices: r.indices, rows: r.readRows(0, r.rows), h: r.height, w: r.width, n: r.rows };
      } finally {
        r.close();
      }
    },
    onDisk: true,
    check: (v) => {
      const { rows, h, w, n, indices } = v as {
        rows: { vis: Float32Array; image: Float32Array; target: Int32Array };
        h: number;
        w: number;
        n: number;
        indices: number[];
      };
      if (rows.vis.length !== n * h * w || rows.image.length !== 3 * n * h * w || rows.target.length !== n) {
        return 'row lengths do not match the shape';
      }
      return indices.length === n ? null : 'index length';
    },
  },
};

function checkGtsegsItems(items: unknown): string | null {
  type Pic = { width: number; height: number; data: Uint8Array };
  for (const it of items as { image: Pic; mask: Pic }[]) {
    const { image, mask } = it;
    if (image.data.length !== image.width * image.height * 3) return 'image size';
    if (mask.data.length !== mask.width * mask.height || mask.width !== image.width) return 'mask size';
    if (!mask.data.every((x) => x === 0 || x === 1)) return 'mask not 0/1';
  }
  return null;
}

// --- the run --------------------------------------------------------------------------------------------------

/** A canonical text of any reader result, to tell "the original data" from "other data". */
export function digest(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === 'bigint') return `${x}n`;
    if (ArrayBuffer.isView(x)) return [x.constructor.name, Array.from(x as unknown as ArrayLike<number>, String)];
    if (x instanceof Map) return ['Map', [...x.entries()]];
    if (x instanceof Set) return ['Set', [...x]];
    return x;
  });
}

export interface FuzzReport {
  target: string;
  cases: number;
  same: number;
  changed: number;
  errors: number;
  /** Error messages (file name stripped, numbers collapsed) → count. */
  messages: Record<string, number>;
  failures: string[];
  ms: number;
  slowestMs: number;
}

export async function runTarget(
  name: string,
  cases: number,
  seed: number,
  progress: (i: number, desc: string) => void,
): Promise<FuzzReport> {
  const target = TARGETS[name]!;
  const seeds = await target.seeds();
  const dir = fs.mkdtempSync(path.join(tmpdir(), `fuzz-${name}-`));
  const rng = new Rng(seed);
  const report: FuzzReport = {
    target: name,
    cases,
    same: 0,
    changed: 0,
    errors: 0,
    messages: {},
    failures: [],
    ms: 0,
    slowestMs: 0,
  };
  const t0 = performance.now();
  try {
    const originals = new Map<string, string>();
    for (const s of seeds) {
      const file = path.join(dir, `${s.name}.${target.ext}`);
      if (target.onDisk) fs.writeFileSync(file, s.bytes);
      const v = await target.read(s.bytes, file);
      const bad = target.check(v);
      if (bad) throw new Error(`seed ${s.name} is not well-formed: ${bad}`);
      originals.set(s.name, digest(v));
    }
    for (let i = 0; i < cases; i++) {
      const s = seeds[rng.int(0, seeds.length)]!;
      const m = mutate(rng, s.bytes, target);
      const label = `case ${i} (${s.name}: ${m.desc})`;
      progress(i, label);
      const file = path.join(dir, `case-${i}.${target.ext}`);
      if (target.onDisk) fs.writeFileSync(file, m.bytes);
      const c0 = performance.now();
      try {
        const v = await target.read(m.bytes, file);
        const bad = target.check(v);
        if (bad) report.failures.push(`${label}: returned malformed data: ${bad}`);
        else if (digest(v) === originals.get(s.name)) report.same++;
        else report.changed++;
      } catch (e) {
        if (e instanceof FileFormatError && e.message.startsWith(`${file}: `) && !e.message.includes('\n')) {
          report.errors++;
          const key = e.message
            .slice(file.length + 2)
            .replace(/'[^']*'/g, "'…'")
            .replace(/\d+/g, 'N')
            .slice(0, 90);
          report.messages[key] = (report.messages[key] ?? 0) + 1;
        } else {
          const what = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e);
          report.failures.push(`${label}: threw ${what}`);
        }
      }
      const dt = performance.now() - c0;
      report.slowestMs = Math.max(report.slowestMs, dt);
      if (target.onDisk) fs.rmSync(file, { force: true });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  report.ms = performance.now() - t0;
  return report;
}
