/**
 * The explanation file of the perturbation benchmark, in the layout `generate_visualizations.py` writes with h5py
 * and `pertubation_eval_from_hdf5.py` reads (docs/formats.md#explanation-files):
 *
 * | dataset  | shape          | dtype   | chunks (h5py's guess) | filter | maxshape            |
 * |----------|----------------|---------|-----------------------|--------|---------------------|
 * | `vis`    | (N, 1, H, W)   | float32 | (1, 1, 56, 56) @224   | gzip 4 | (None, 1, H, W)     |
 * | `image`  | (N, 3, H, W)   | float32 | (1, 1, 56, 56) @224   | gzip 4 | (None, 3, H, W)     |
 * | `target` | (N,)           | int32   | (1,)                  | gzip 4 | (None,)             |
 * | `index`  | (N,)           | int64   | (1,)                  | gzip 4 | (None,)             |
 * | `rows`   | (1,)           | int64   | contiguous            | none   | (1,)                |
 *
 * Chunk shapes are computed with h5py's `guess_chunk` algorithm for the shape the reference creates the dataset with
 * ((1, C, H, W) and (1,)), so other image sizes get what h5py would give them. The fill value is the HDF5 default, 0.
 * `index` is ours: the data-set index of each row (h5py readers such as `ImagenetResults` ignore it). It lets shard
 * files written on several machines be merged (`mergeExplanationFiles`). `rows` is ours too: the number of complete
 * rows, the commit of every append. An append grows and writes the four datasets and flushes; only then is `rows`
 * overwritten (eight bytes in place) and flushed again. HDF5 writes a flush's metadata in no fixed order, so a kill
 * mid-flush can leave a dataset's new length on disk without its new chunk (which then reads as the fill value, 0);
 * rows past `rows` are never trusted, and a resumed writer trims them. Run metadata (method, vis_class, model, version, …) are attributes on the
 * root group (strings are variable-length UTF-8, as h5py writes them).
 *
 * Files are written with HDF5 format bounds ('earliest', 'v110'), the bounds h5py 3.x uses by default, so HDF5 1.10
 * readers open them. `readExplanations` reads files written here and by the official script (no `index`: rows are
 * numbered 0 … N − 1). Every problem is a FileFormatError naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import h5wasm, { Dataset } from 'h5wasm/node';
import { locateHdf5, quietly, summariseDiag } from '../datasets/gtsegs.js';
import { FileFormatError, shapeString } from './host-tensor.js';

type H5File = InstanceType<typeof h5wasm.File>;

/** The dataset holding the number of complete rows (see the top of this file). */
const ROWS = 'rows';

export type ExplAttrValue = string | number | number[] | string[];
export type ExplAttrs = Record<string, ExplAttrValue>;

export interface ExplanationRow {
  /** The map, H·W values (the (1, H, W) row). */
  vis: Float32Array;
  /** The [0, 1] image before normalisation, 3·H·W values (CHW). */
  image: Float32Array;
  /** The ground-truth label. */
  target: number;
  /** Data-set index of the row; default: the row's position in the file. */
  index?: number;
}

export interface ExplanationRows {
  /** count·H·W values: (count, 1, H, W). */
  vis: Float32Array;
  /** count·3·H·W values: (count, 3, H, W). */
  image: Float32Array;
  target: Int32Array;
  /** Data-set indices of the rows. */
  index: number[];
}

export interface ExplanationFileOptions {
  height: number;
  width: number;
  attrs?: ExplAttrs;
}

export interface ExplanationReader {
  readonly file: string;
  readonly rows: number;
  readonly height: number;
  readonly width: number;
  readonly attrs: ExplAttrs;
  /** Whether the file has an `index` dataset (the official script's files do not). */
  readonly hasIndex: boolean;
  /** Data-set index of every row (0 … N − 1 when the file has no `index`). */
  readonly indices: readonly number[];
  readRows(start: number, count: number): ExplanationRows;
  /** The ground-truth label of every row (only the small `/target` dataset is read). */
  readTargets(): Int32Array;
  close(): void;
}

// ---------------------------------------------------------------------------------------------------------------
// h5py's chunk guess.

/** Rows copied at a time when a broken file is rebuilt (bounded memory for any file size). */
const SALVAGE_BATCH = 64;

const CHUNK_BASE = 16 * 1024;
const CHUNK_MIN = 8 * 1024;
const CHUNK_MAX = 1024 * 1024;

/**
 * h5py's `guess_chunk(shape, maxshape, typesize)` (h5py/_hl/filters.py): halve the axes in turn, starting with the
 * first, until the chunk is below (or within 50% of) a target size that grows with the data-set size, and below 1 MiB.
 * A 0 in `shape` counts as 1024.
 */
export function guessChunk(shape: readonly number[], typesize: number): number[] {
  if (shape.length === 0) throw new RangeError('chunks are not allowed for scalar datasets');
  const chunks = shape.map((x) => (x === 0 ? 1024 : x));
  const product = (): number => chunks.reduce((a, b) => a * b, 1);
  const dsetSize = product() * typesize;
  let target = CHUNK_BASE * 2 ** Math.log10(dsetSize / (1024 * 1024));
  if (target > CHUNK_MAX) target = CHUNK_MAX;
  else if (target < CHUNK_MIN) target = CHUNK_MIN;
  for (let idx = 0; ; idx++) {
    const bytes = product() * typesize;
    if ((bytes < target || Math.abs(bytes - target) / target < 0.5) && bytes < CHUNK_MAX) break;
    if (product() === 1) break;
    const k = idx % chunks.length;
    chunks[k] = Math.ceil(chunks[k]! / 2);
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------------------------
// HDF5 plumbing.

const LAYOUT =
  'expected the explanation layout of generate_visualizations.py: vis (N, 1, H, W) float32, ' +
  'image (N, 3, H, W) float32, target (N,) int32';

const H5T_INTEGER = 0;
const H5T_FLOAT = 1;
/** h5wasm reports H5S_UNLIMITED as 2^64 − 1 rounded to a double. */
const UNLIMITED = 2 ** 63;

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
}

/** Runs h5wasm calls quietly; an exception or HDF5 error output becomes a FileFormatError about `what`. */
function h5call<T>(file: string, what: string, fn: () => T): T {
  const { value, diag } = quietly((): { ok: T } | { err: unknown } => {
    try {
      return { ok: fn() };
    } catch (err) {
      return { err };
    }
  });
  if ('err' in value) {
    if (value.err instanceof FileFormatError) throw value.err;
    const why = diag ? summariseDiag(diag) : errorText(value.err);
    throw new FileFormatError(file, `${what}: HDF5 error (${why})`);
  }
  if (diag)
    throw new FileFormatError(file, `${what}: HDF5 error (${summariseDiag(diag)}); the file is corrupt or truncated`);
  return value.ok;
}

function describeStart(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(16);
    const n = fs.readSync(fd, b, 0, 16, 0);
    const text = b.subarray(0, n).toString('latin1');
    if (/^[\x20-\x7e\t\r\n]+$/.test(text)) return `text starting '${text.replace(/\s+/g, ' ').trim()}'`;
    return `bytes ${[...b.subarray(0, Math.min(n, 8))].map((x) => x.toString(16).padStart(2, '0')).join(' ')}`;
  } finally {
    fs.closeSync(fd);
  }
}

/** Checks that `file` is an existing, complete HDF5 file, then opens it with h5wasm. */
async function openExisting(file: string, mode: 'r' | 'a'): Promise<H5File> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(file, code === 'ENOENT' ? 'file not found' : `cannot open (${code ?? errorText(e)})`);
  }
  if (st.isDirectory()) throw new FileFormatError(file, 'is a folder, expected an HDF5 file (results.hdf5)');
  if (st.size === 0) throw new FileFormatError(file, `empty file; ${LAYOUT}`);
  const fd = fs.openSync(file, 'r');
  let loc: ReturnType<typeof locateHdf5>;
  try {
    loc = locateHdf5(file, fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
  if (!loc) throw new FileFormatError(file, `not an HDF5 file (no HDF5 signature; found ${describeStart(file)})`);
  await h5wasm.ready;
  const opened = h5call(file, 'opening the file', () => new h5wasm.File(file, mode));
  if (opened.file_id < 0n) throw new FileFormatError(file, 'the HDF5 library cannot open it; the file is corrupt');
  return opened;
}

function closeQuietly(f: H5File): void {
  quietly(() => {
    try {
      f.close();
    } catch {
      // already closed or broken: nothing to release
    }
  });
}

interface DsInfo {
  ds: Dataset;
  shape: number[];
  maxshape: number[];
  type: number;
  size: number;
}

function describe(d: DsInfo): string {
  const t =
    d.type === H5T_FLOAT ? `float${8 * d.size}` : d.type === H5T_INTEGER ? `int${8 * d.size}` : `type class ${d.type}`;
  return `${t} ${shapeString(d.shape)}`;
}

interface Layout {
  vis: DsInfo;
  image: DsInfo;
  target: DsInfo;
  index: DsInfo | null;
  /** The commit count (files written before it existed, and the official script's, have none). */
  rows: DsInfo | null;
  height: number;
  width: number;
}

function dataset(file: string, f: H5File, names: string[], name: string, required: boolean): DsInfo | null {
  if (!names.includes(name)) {
    if (!required) return null;
    const found = names.length ? names.map((n) => `/${n}`).join(', ') : 'nothing';
    throw new FileFormatError(file, `no '${name}' dataset; ${LAYOUT}; the file holds: ${found}`);
  }
  const ds = f.get(name);
  if (!(ds instanceof Dataset)) {
    throw new FileFormatError(file, `/${name} is a ${ds?.constructor.name ?? 'broken link'}, expected a dataset`);
  }
  const m = ds.metadata;
  return {
    ds,
    shape: (m.shape ?? []).map(Number),
    maxshape: (m.maxshape ?? []).map(Number),
    type: m.type,
    size: m.size,
  };
}

/** Validates the datasets (not their lengths) and returns them. */
function inspectLayout(file: string, f: H5File): Layout {
  const names = f.keys();
  const vis = dataset(file, f, names, 'vis', true)!;
  const image = dataset(file, f, names, 'image', true)!;
  const target = dataset(file, f, names, 'target', true)!;
  const index = dataset(file, f, names, 'index', false);
  const rows = dataset(file, f, names, ROWS, false);
  if (vis.type !== H5T_FLOAT || vis.shape.length !== 4 || vis.shape[1] !== 1) {
    throw new FileFormatError(file, `/vis is ${describe(vis)}; ${LAYOUT}`);
  }
  if (image.type !== H5T_FLOAT || image.shape.length !== 4 || image.shape[1] !== 3) {
    throw new FileFormatError(file, `/image is ${describe(image)}; ${LAYOUT}`);
  }
  const [height, width] = [image.shape[2]!, image.shape[3]!];
  if (vis.shape[2] !== height || vis.shape[3] !== width) {
    throw new FileFormatError(
      file,
      `/vis maps are ${vis.shape[2]}×${vis.shape[3]} but /image is ${height}×${width} (H×W); they must match`,
    );
  }
  if (target.type !== H5T_INTEGER || target.shape.length !== 1) {
    throw new FileFormatError(file, `/target is ${describe(target)}; ${LAYOUT}`);
  }
  if (index && (index.type !== H5T_INTEGER || index.shape.length !== 1)) {
    throw new FileFormatError(file, `/index is ${describe(index)}, expected (N,) integers (data-set indices)`);
  }
  if (rows && (rows.type !== H5T_INTEGER || rows.shape.length !== 1 || rows.shape[0] !== 1)) {
    throw new FileFormatError(file, `/${ROWS} is ${describe(rows)}, expected (1,) integer (the complete rows)`);
  }
  if (rows && !index) throw new FileFormatError(file, `/${ROWS} is present but /index is not`);
  return { vis, image, target, index, rows, height, width };
}

/**
 * The number of complete rows: `rows` when the file has it (checked against the datasets, which may be longer: an
 * append that did not commit), else the common length, which must then be the same for every dataset.
 */
function completeRows(file: string, l: Layout): { n: number; longer: boolean } {
  const data = [l.vis, l.image, l.target, ...(l.index ? [l.index] : [])];
  if (l.rows) {
    const n = Number(h5call(file, `reading /${ROWS}`, () => toNumberArray(l.rows!.ds.value))[0]);
    if (!Number.isSafeInteger(n) || n < 0) throw new FileFormatError(file, `/${ROWS} holds ${n}, not a row count`);
    if (data.some((d) => d.shape[0]! < n)) {
      throw new FileFormatError(file, `/${ROWS} says ${n} complete rows, but the datasets hold fewer (${lengths(l)})`);
    }
    return { n, longer: data.some((d) => d.shape[0]! > n) };
  }
  const n = l.target.shape[0]!;
  if (data.some((d) => d.shape[0] !== n)) {
    throw new FileFormatError(
      file,
      `datasets of different lengths (${lengths(l)}); each must hold one row per image. ` +
        'A writer interrupted mid-append leaves this: ExplanationWriter.open() trims the incomplete rows',
    );
  }
  return { n, longer: false };
}

function lengths(l: Layout): string {
  const parts = [`vis ${l.vis.shape[0]}`, `image ${l.image.shape[0]}`, `target ${l.target.shape[0]}`];
  if (l.index) parts.push(`index ${l.index.shape[0]}`);
  return parts.join(', ');
}

function toNumberArray(v: unknown): number[] {
  if (v === null || v === undefined) return [];
  if (typeof v === 'number' || typeof v === 'bigint') return [Number(v)];
  return Array.from(v as ArrayLike<number | bigint>, Number);
}

function readAttrs(f: H5File): ExplAttrs {
  const out: ExplAttrs = {};
  const attrs = f.attrs;
  for (const name of Object.keys(attrs)) {
    const v: unknown = attrs[name]!.value;
    if (typeof v === 'string') out[name] = v;
    else if (typeof v === 'number' || typeof v === 'bigint') out[name] = Number(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[name] = v as string[];
    else if (ArrayBuffer.isView(v) || Array.isArray(v)) {
      const a = toNumberArray(v);
      out[name] = a.length === 1 ? a[0]! : a;
    }
    // other attribute types (compound, references) are not run metadata: left out
  }
  return out;
}

function writeAttrs(file: string, f: H5File, attrs: ExplAttrs): void {
  for (const [name, v] of Object.entries(attrs)) {
    if (!name || name.includes('/')) throw new RangeError(`${file}: bad attribute name '${name}'`);
    const nums = typeof v === 'number' ? [v] : Array.isArray(v) && v.every((x) => typeof x === 'number') ? v : null;
    if (typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string'))) {
      f.create_attribute(name, v);
    } else if (nums && nums.length > 0) {
      const int32 = nums.every((x) => Number.isInteger(x) && Math.abs(x) < 2 ** 31);
      f.create_attribute(
        name,
        typeof v === 'number' ? v : nums,
        typeof v === 'number' ? null : [nums.length],
        int32 ? '<i4' : '<d',
      );
    } else {
      throw new RangeError(`${file}: attribute '${name}' must be a string, a number or a non-empty array of either`);
    }
  }
}

function sameAttrs(a: ExplAttrs, b: ExplAttrs): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

// ---------------------------------------------------------------------------------------------------------------
// Reading.

function toFloat32(v: unknown, n: number, file: string, what: string): Float32Array {
  if (v instanceof Float32Array && v.length === n) return v;
  if (v instanceof Float64Array && v.length === n) return Float32Array.from(v);
  throw new FileFormatError(
    file,
    `${what}: read ${(v as ArrayLike<unknown> | null)?.length ?? 0} values, expected ${n}`,
  );
}

/**
 * Opens an explanation file (ours or the official script's `results.hdf5`; a folder holding `results.hdf5` is
 * accepted, as the official reader takes one). `size` requires that map/image size.
 */
export async function readExplanations(
  file: string,
  opts: { size?: { height: number; width: number } } = {},
): Promise<ExplanationReader> {
  if (fs.existsSync(file) && fs.statSync(file).isDirectory() && fs.existsSync(path.join(file, 'results.hdf5'))) {
    file = path.join(file, 'results.hdf5');
  }
  const f = await openExisting(file, 'r');
  try {
    const layout = h5call(file, 'reading the file structure', () => inspectLayout(file, f));
    // Rows past the committed count (an append cut short) are not read.
    const { n } = completeRows(file, layout);
    const { height, width } = layout;
    if (opts.size && (opts.size.height !== height || opts.size.width !== width)) {
      throw new FileFormatError(
        file,
        `maps and images are ${height}×${width}, expected ${opts.size.height}×${opts.size.width} (H×W)`,
      );
    }
    const attrs = h5call(file, 'reading attributes', () => readAttrs(f));
    const indices = layout.index
      ? n === 0
        ? []
        : h5call(file, 'reading /index', () => toNumberArray(layout.index!.ds.slice([[0, n]])))
      : Array.from({ length: n }, (_, i) => i);
    if (indices.length !== n) throw new FileFormatError(file, `/index: read ${indices.length} values, expected ${n}`);
    let closed = false;
    return {
      file,
      rows: n,
      height,
      width,
      attrs,
      hasIndex: layout.index !== null,
      indices,
      readRows(start: number, count: number): ExplanationRows {
        if (closed) throw new Error(`${file}: explanation file is closed`);
        if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > n) {
          throw new RangeError(`${file}: rows [${start}, ${start + count}) out of range [0, ${n})`);
        }
        const range: [number, number] = [start, start + count];
        const plane = height * width;
        if (count === 0) {
          return { vis: new Float32Array(0), image: new Float32Array(0), target: new Int32Array(0), index: [] };
        }
        return h5call(file, `reading rows ${start}…${start + count - 1}`, () => ({
          vis: toFloat32(layout.vis.ds.slice([range, [], [], []]), count * plane, file, '/vis'),
          image: toFloat32(layout.image.ds.slice([range, [], [], []]), count * 3 * plane, file, '/image'),
          target: Int32Array.from(toNumberArray(layout.target.ds.slice([range]))),
          index: indices.slice(start, start + count),
        }));
      },
      readTargets(): Int32Array {
        if (closed) throw new Error(`${file}: explanation file is closed`);
        if (n === 0) return new Int32Array(0);
        return h5call(file, 'reading /target', () => Int32Array.from(toNumberArray(layout.target.ds.slice([[0, n]]))));
      },
      close(): void {
        if (!closed) closeQuietly(f);
        closed = true;
      },
    };
  } catch (e) {
    closeQuietly(f);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing.

function checkSize(height: number, width: number): void {
  if (![height, width].every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(`map size must be positive integers, got ${height}×${width}`);
  }
}

function createIndex(f: H5File, data: BigInt64Array): void {
  f.create_dataset({
    name: 'index',
    data,
    shape: [data.length],
    dtype: '<q',
    maxshape: [null],
    chunks: guessChunk([1], 8),
    compression: 'gzip',
    compression_opts: 4,
  });
}

function createRows(f: H5File, n: number): void {
  f.create_dataset({ name: ROWS, data: BigInt64Array.of(BigInt(n)), shape: [1], dtype: '<q' });
}

export class ExplanationWriter {
  private closed = false;
  private readonly seen: Set<number>;

  private constructor(
    readonly file: string,
    private readonly h5: H5File,
    readonly height: number,
    readonly width: number,
    private count: number,
    readonly attrs: ExplAttrs,
    indices: readonly number[],
    /** Set by open() or openOrRecover() when an interrupted write had to be repaired: what was done. */
    public repaired: string | null = null,
  ) {
    this.seen = new Set(indices);
  }

  /** Rows in the file. */
  get rows(): number {
    return this.count;
  }

  /** Whether the row of this data-set index is already in the file (resume skips it). */
  has(index: number): boolean {
    return this.seen.has(index);
  }

  /** Creates (or truncates) `file` with empty, growable datasets in the reference layout and the given attributes. */
  static async create(file: string, opts: ExplanationFileOptions): Promise<ExplanationWriter> {
    const { height, width } = opts;
    checkSize(height, width);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
    } catch (e) {
      throw new FileFormatError(
        file,
        `cannot create its folder (${(e as NodeJS.ErrnoException).code ?? errorText(e)})`,
      );
    }
    await h5wasm.ready;
    const f = h5call(file, 'creating the file', () => new h5wasm.File(file, 'w', { libver: ['earliest', 'v110'] }));
    if (f.file_id < 0n) throw new FileFormatError(file, 'cannot create the file (check the path and permissions)');
    try {
      h5call(file, 'creating datasets', () => {
        const gz = { compression: 'gzip' as const, compression_opts: 4 };
        for (const [name, c] of [
          ['vis', 1],
          ['image', 3],
        ] as const) {
          f.create_dataset({
            name,
            data: new Float32Array(0),
            shape: [0, c, height, width],
            dtype: '<f4',
            maxshape: [null, c, height, width],
            chunks: guessChunk([1, c, height, width], 4),
            ...gz,
          });
        }
        f.create_dataset({
          name: 'target',
          data: new Int32Array(0),
          shape: [0],
          dtype: '<i4',
          maxshape: [null],
          chunks: guessChunk([1], 4),
          ...gz,
        });
        createIndex(f, new BigInt64Array(0));
        createRows(f, 0);
        writeAttrs(file, f, opts.attrs ?? {});
        f.flush();
      });
    } catch (e) {
      closeQuietly(f);
      throw e;
    }
    return new ExplanationWriter(file, f, height, width, 0, { ...(opts.attrs ?? {}) }, []);
  }

  /**
   * Opens an existing file to append to it (resume). Validates the layout (float32 maps and images, int32 targets,
   * growable first axis). A file without `index` (e.g. the official script's) gets one numbering its rows 0 … N − 1.
   * Rows an interrupted append left incomplete (datasets longer than `index`) are trimmed; `repaired` says so.
   */
  static async open(file: string): Promise<ExplanationWriter> {
    const f = await openExisting(file, 'a');
    try {
      return h5call(file, 'opening for append', () => {
        const l = inspectLayout(file, f);
        for (const [name, d, t] of [
          ['vis', l.vis, H5T_FLOAT],
          ['image', l.image, H5T_FLOAT],
          ['target', l.target, H5T_INTEGER],
        ] as const) {
          if (d.type !== t || d.size !== 4) {
            throw new FileFormatError(
              file,
              `cannot append: /${name} is ${describe(d)}, expected ${t === H5T_FLOAT ? 'float32' : 'int32'}`,
            );
          }
          if (!((d.maxshape[0] ?? 0) >= UNLIMITED) || d.maxshape.slice(1).some((m, k) => m !== d.shape[k + 1])) {
            throw new FileFormatError(
              file,
              `cannot append: /${name} has maxshape ${shapeString(d.maxshape.map((m) => (m >= UNLIMITED ? -1 : m)))}, ` +
                'expected an unlimited first axis (None, …)',
            );
          }
        }
        if (l.index && !((l.index.maxshape[0] ?? 0) >= UNLIMITED)) {
          throw new FileFormatError(file, 'cannot append: /index has a fixed length (expected maxshape (None,))');
        }
        let repaired: string | null = null;
        const data = [l.vis, l.image, l.target, ...(l.index ? [l.index] : [])];
        let n: number;
        const trim = () => {
          repaired = `trimmed to the ${n} complete rows (lengths were ${lengths(l)})`;
          for (const d of data) if (d.shape[0]! > n) d.ds.resize([n, ...d.shape.slice(1)]);
        };
        if (l.rows) {
          const c = completeRows(file, l);
          n = c.n;
          if (c.longer) trim();
        } else if (l.index) {
          // Written before `rows` existed: `index`, written last, was the commit.
          n = l.index.shape[0]!;
          if (data.some((d) => d.shape[0]! < n)) {
            throw new FileFormatError(
              file,
              `datasets of inconsistent lengths (${lengths(l)}): /index is longer than the data`,
            );
          }
          if (data.some((d) => d.shape[0]! > n)) trim();
          createRows(f, n);
        } else {
          n = l.target.shape[0]!;
          if (data.some((d) => d.shape[0] !== n)) {
            throw new FileFormatError(
              file,
              `datasets of different lengths (${lengths(l)}), and no /index to tell which rows are complete`,
            );
          }
          createIndex(
            f,
            BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
          );
          createRows(f, n);
        }
        f.flush();
        const indices =
          l.index && n > 0 ? toNumberArray(l.index.ds.slice([[0, n]])) : Array.from({ length: n }, (_, i) => i);
        if (new Set(indices).size !== indices.length) {
          throw new FileFormatError(file, '/index holds a data-set index more than once');
        }
        return new ExplanationWriter(file, f, l.height, l.width, n, readAttrs(f), indices, repaired);
      });
    } catch (e) {
      closeQuietly(f);
      throw e;
    }
  }

  /**
   * open(), but a file that a killed process left unreadable is rebuilt instead of refused. HDF5 updates its
   * metadata in place, with no journal, so SIGKILL in the middle of a flush can leave the file inconsistent.
   * Such a file is renamed `<file>.broken`, a new file is created, and every complete row that can still be
   * read from the broken one is copied into it (possibly none); the caller recomputes the rest. Then the
   * broken copy is deleted. A recovery that is itself interrupted starts over from `<file>.broken`. A file
   * that reads fine but has the wrong layout is refused, as by open(). `repaired` says what was done.
   */
  static async openOrRecover(file: string, opts: ExplanationFileOptions): Promise<ExplanationWriter> {
    const broken = `${file}.broken`;
    let reason: string;
    if (fs.existsSync(broken)) {
      reason = 'an earlier recovery was interrupted';
    } else {
      try {
        return await ExplanationWriter.open(file);
      } catch (e) {
        if (!(e instanceof FileFormatError) || !/HDF5 error|truncated/.test(e.message)) throw e;
        reason = e.message;
        fs.renameSync(file, broken);
      }
    }
    const w = await ExplanationWriter.create(file, opts);
    let recovered = 0;
    try {
      const r = await readExplanations(broken);
      try {
        for (let start = 0; start < r.rows; start += SALVAGE_BATCH) {
          const rows = r.readRows(start, Math.min(SALVAGE_BATCH, r.rows - start));
          const plane = r.height * r.width;
          w.append(
            rows.index.map((index, k) => ({
              vis: rows.vis.subarray(k * plane, (k + 1) * plane),
              image: rows.image.subarray(k * 3 * plane, (k + 1) * 3 * plane),
              target: rows.target[k]!,
              index,
            })),
          );
          recovered = w.rows;
        }
      } finally {
        r.close();
      }
    } catch {
      // Rows past the damage cannot be read: they are recomputed.
    }
    fs.unlinkSync(broken);
    w.repaired = `${reason}; rebuilt with the ${recovered} complete rows still readable, the others are recomputed`;
    return w;
  }

  /** Appends rows (growing every dataset), then flushes, so a killed process keeps every finished append. */
  append(rows: readonly ExplanationRow[]): void {
    if (this.closed) throw new Error(`${this.file}: explanation writer is closed`);
    const n = rows.length;
    if (n === 0) return;
    const plane = this.height * this.width;
    const vis = new Float32Array(n * plane);
    const image = new Float32Array(n * 3 * plane);
    const target = new Int32Array(n);
    const index = new BigInt64Array(n);
    const batch = new Set<number>();
    rows.forEach((r, k) => {
      const where = `${this.file}: row ${this.count + k}`;
      if (r.vis.length !== plane)
        throw new RangeError(
          `${where}: vis has ${r.vis.length} values, expected ${plane} (${this.height}×${this.width})`,
        );
      if (r.image.length !== 3 * plane) {
        throw new RangeError(
          `${where}: image has ${r.image.length} values, expected ${3 * plane} (3×${this.height}×${this.width})`,
        );
      }
      if (!Number.isInteger(r.target) || r.target < -(2 ** 31) || r.target >= 2 ** 31) {
        throw new RangeError(`${where}: target ${r.target} is not an int32`);
      }
      const idx = r.index ?? this.count + k;
      if (!Number.isSafeInteger(idx) || idx < 0)
        throw new RangeError(`${where}: index ${idx} is not a non-negative integer`);
      if (this.seen.has(idx) || batch.has(idx))
        throw new RangeError(`${where}: data-set index ${idx} is already in the file`);
      batch.add(idx);
      vis.set(r.vis, k * plane);
      image.set(r.image, k * 3 * plane);
      target[k] = r.target;
      index[k] = BigInt(idx);
    });
    const start = this.count;
    const end = start + n;
    h5call(this.file, `appending rows ${start}…${end - 1}`, () => {
      // The rows first, flushed; then the commit (see the top of this file).
      for (const [name, data, inner] of [
        ['vis', vis, [1, this.height, this.width]],
        ['image', image, [3, this.height, this.width]],
        ['target', target, []],
        ['index', index, []],
      ] as const) {
        const ds = this.h5.get(name) as Dataset;
        ds.resize([end, ...inner]);
        ds.write_slice([[start, end], ...inner.map(() => [] as [])], data);
      }
      this.h5.flush();
      (this.h5.get(ROWS) as Dataset).write_slice([[0, 1]], BigInt64Array.of(BigInt(end)));
      this.h5.flush();
    });
    this.count = end;
    for (const i of batch) this.seen.add(i);
  }

  /** Writes everything buffered to the file (append() already does this). */
  flush(): void {
    if (this.closed) return;
    h5call(this.file, 'flushing', () => this.h5.flush());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    h5call(this.file, 'closing', () => this.h5.close());
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Merging shards.

export interface MergeOptions {
  /** First data-set index of the run (default 0). */
  start?: number;
  /** Number of rows the run has (default: up to the largest index found). Catches a missing last shard. */
  rows?: number;
  /** Rows copied per append (default 64). */
  batch?: number;
}

/**
 * Joins shard files (each holding the rows of some data-set indices, in any order) into `out`, ordered by data-set
 * index: the same datasets, attributes and rows a single machine writing the run in order would produce. Fails on
 * indices held by two shards, missing indices in [start, start + rows), files without `index`, or shards whose
 * attributes or map sizes differ. `out` is written through a temporary file and renamed at the end.
 */
export async function mergeExplanationFiles(
  out: string,
  inputs: readonly string[],
  opts: MergeOptions = {},
): Promise<{ rows: number }> {
  if (inputs.length === 0) throw new RangeError('mergeExplanationFiles: no input files');
  const readers: ExplanationReader[] = [];
  const tmp = `${out}.tmp-${process.pid}`;
  let writer: ExplanationWriter | null = null;
  try {
    for (const file of inputs) readers.push(await readExplanations(file));
    const first = readers[0]!;
    const where = new Map<number, [number, number]>();
    readers.forEach((r, k) => {
      if (!r.hasIndex) {
        throw new FileFormatError(
          r.file,
          "has no 'index' dataset, so it does not say which data-set rows it holds; only files written with row " +
            'indices (ExplanationWriter) can be merged',
        );
      }
      if (r.height !== first.height || r.width !== first.width) {
        throw new FileFormatError(
          r.file,
          `maps are ${r.height}×${r.width} but ${first.file} has ${first.height}×${first.width}`,
        );
      }
      const diff = sameAttrs(first.attrs, r.attrs);
      if (diff.length > 0) {
        const show = diff
          .slice(0, 4)
          .map((a) => `${a}: ${JSON.stringify(r.attrs[a])} vs ${JSON.stringify(first.attrs[a])}`)
          .join('; ');
        throw new FileFormatError(
          r.file,
          `metadata differs from ${first.file} (${show}); shards of one run must agree`,
        );
      }
      r.indices.forEach((idx, row) => {
        const prev = where.get(idx);
        if (prev) {
          const other = readers[prev[0]]!.file;
          throw new FileFormatError(r.file, `data-set index ${idx} is also in ${other}: shards overlap`);
        }
        where.set(idx, [k, row]);
      });
    });
    const start = opts.start ?? 0;
    let maxIdx = start - 1;
    for (const i of where.keys()) if (i > maxIdx) maxIdx = i;
    const total = opts.rows ?? maxIdx + 1 - start;
    const outside = [...where.keys()].filter((i) => i < start || i >= start + total).sort((a, b) => a - b);
    if (outside.length > 0) {
      throw new FileFormatError(
        out,
        `the shards hold indices outside [${start}, ${start + total}): ${outside.slice(0, 5).join(', ')}${outside.length > 5 ? ', …' : ''}`,
      );
    }
    const missing: number[] = [];
    for (let i = start; i < start + total && missing.length < 6; i++) if (!where.has(i)) missing.push(i);
    if (missing.length > 0) {
      const count = total - where.size;
      throw new FileFormatError(
        out,
        `${count} data-set indices in [${start}, ${start + total}) are in none of the ${inputs.length} shards ` +
          `(${missing.slice(0, 5).join(', ')}${count > 5 ? ', …' : ''}): a shard is missing or incomplete`,
      );
    }
    writer = await ExplanationWriter.create(tmp, { height: first.height, width: first.width, attrs: first.attrs });
    const plane = first.height * first.width;
    const batch = Math.max(1, opts.batch ?? 64);
    for (let i = start; i < start + total; i += batch) {
      const rows: ExplanationRow[] = [];
      for (let j = i; j < Math.min(i + batch, start + total); j++) {
        const [k, row] = where.get(j)!;
        const r = readers[k]!.readRows(row, 1);
        rows.push({
          vis: r.vis.subarray(0, plane),
          image: r.image.subarray(0, 3 * plane),
          target: r.target[0]!,
          index: j,
        });
      }
      writer.append(rows);
    }
    writer.close();
    writer = null;
    try {
      fs.renameSync(tmp, out);
    } catch (e) {
      throw new FileFormatError(
        out,
        `cannot write the merged file (${(e as NodeJS.ErrnoException).code ?? errorText(e)})`,
      );
    }
    return { rows: total };
  } finally {
    for (const r of readers) r.close();
    if (writer) {
      try {
        writer.close();
      } catch {
        // the error that got us here matters more
      }
    }
    fs.rmSync(tmp, { force: true });
  }
}
