/**
 * The ImageNet-segmentation data set of the official benchmark (`gtsegs_ijcv.mat`, Guillaumin et al.), read as
 * `imagenet_seg_eval.py`'s `Imagenet_Segmentation` reads it (docs/formats.md#segmentation-data):
 *
 *     img  = np.array(f[f['/value/img'][i, 0]]).transpose((2, 1, 0))          # (3, W, H) → H×W×3 uint8
 *     mask = np.array(f[f[f['/value/gt'][i, 0]][0, 0]]).transpose((1, 0))     # (W, H) → H×W, two dereferences
 *     N    = len(f['/value/img'])
 *
 * Accepted files:
 * - MATLAB v7.3 MAT-files (HDF5 behind a 512-byte user block), read lazily one image at a time through h5wasm;
 * - the same layout in a plain HDF5 file (superblock at offset 0);
 * - Level-5 MAT-files (MATLAB `-v7`, `scipy.io.savemat`) holding a struct `value` with cell fields `img` (H×W×3
 *   uint8) and `gt` (1×1 cells holding H×W masks, or the masks directly), parsed whole at open time.
 *
 * Masks come back as 0/1 bytes. A mask holding other values (e.g. 0/255) is mapped to non-zero → 1 and reported
 * once through the `warn` option. Every problem with the file is a FileFormatError naming the file.
 */
import fs from 'node:fs';
import h5wasm, { Dataset, Group, Reference } from 'h5wasm/node';
import { type ImageSize, normalizeCHW, type RgbImage, resizeRgb, toUnitCHW } from '../data/image.js';
import { resizeNearest } from '../data/pillow-resize.js';
import { FileFormatError, shapeString } from '../formats/host-tensor.js';
import { isMat5Header, type MatValue, parseMat5 } from '../formats/mat5.js';

/** A segmentation mask, row-major, 0 = background, 1 = object. */
export interface SegMask {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface GtsegsItem {
  /** H×W×3 RGB. */
  image: RgbImage;
  /** H×W, 0/1. */
  mask: SegMask;
  /** The image id (e.g. `n01440764_1005`) when the file has `/value/id`. */
  id?: string;
}

export type GtsegsFormat = 'mat-v7.3' | 'hdf5' | 'mat-level5';

export interface GtsegsDataset {
  readonly file: string;
  readonly format: GtsegsFormat;
  /** Number of images (N = len(/value/img)). */
  readonly length: number;
  /** Image i in file order (the evaluation order); reads only that image. */
  get(i: number): GtsegsItem;
  close(): void;
}

export interface GtsegsOpenOptions {
  /** Called once per data set when a mask holds values other than 0 and 1 (they are mapped to 1). */
  warn?: (message: string) => void;
}

// ---------------------------------------------------------------------------------------------------------------
// HDF5 helpers: finding the superblock ourselves, and keeping HDF5's error stack off stderr.

/** The 8-byte HDF5 format signature. */
export const HDF5_SIGNATURE = Uint8Array.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface Hdf5Location {
  /** Byte offset of the superblock: 0, or the user-block size (512, 1024, 2048, …). */
  superblockAt: number;
  /** Superblock version (0–3). */
  version: number;
  /** The absolute end-of-file address the superblock records (the file must be at least this long). */
  recordedEof: number;
}

function readAt(fd: number, pos: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  const got = fs.readSync(fd, b, 0, n, pos);
  return b.subarray(0, got);
}

function readAddress(b: Uint8Array, pos: number, size: number): number {
  let v = 0;
  let undef = true;
  for (let k = size - 1; k >= 0; k--) {
    const byte = b[pos + k] ?? 0;
    if (byte !== 0xff) undef = false;
    v = v * 256 + byte;
  }
  return undef ? Number.NaN : v;
}

/**
 * Looks for the HDF5 superblock where the HDF5 library looks for it (offset 0, then 512, 1024, 2048, …) and checks
 * the end-of-file address it records against the file size. Returns null when there is no signature. A superblock
 * that is cut off, or that records more bytes than the file has, is a FileFormatError ("truncated"), which the
 * library itself would report only on stderr.
 */
export function locateHdf5(file: string, fd: number, size: number): Hdf5Location | null {
  for (let at = 0; at + 8 <= size; at = at === 0 ? 512 : at * 2) {
    const sig = readAt(fd, at, 8);
    if (!sig.every((x, k) => x === HDF5_SIGNATURE[k])) continue;
    const sb = readAt(fd, at, 96);
    const version = sb[8] ?? -1;
    let so: number;
    let baseAt: number;
    if (version === 0 || version === 1) {
      so = sb[13] ?? 0;
      baseAt = version === 0 ? 24 : 28;
    } else if (version === 2 || version === 3) {
      so = sb[9] ?? 0;
      baseAt = 12;
    } else {
      throw new FileFormatError(file, `unsupported HDF5 superblock version ${version} at byte ${at}`);
    }
    // v0/1: base address, free-space address, EOF address; v2/3: base, superblock extension, EOF.
    const eofAt = baseAt + 2 * so;
    if (sb.length < eofAt + so) {
      throw new FileFormatError(file, `truncated: the file ends inside its HDF5 superblock (${size} bytes)`);
    }
    if (![2, 4, 8].includes(so)) throw new FileFormatError(file, `corrupt HDF5 superblock at byte ${at}`);
    const base = readAddress(sb, baseAt, so);
    const stored = readAddress(sb, eofAt, so);
    // The stored EOF is absolute when the base address is the superblock's own offset. When it is not (a user block
    // prepended afterwards), the library shifts it by the difference, and so do we.
    const recordedEof = stored + at - (Number.isNaN(base) ? at : base);
    if (recordedEof > size) {
      throw new FileFormatError(
        file,
        `truncated: the HDF5 superblock records ${recordedEof} bytes, but the file has only ${size} ` +
          `(${((100 * size) / recordedEof).toFixed(1)}%)`,
      );
    }
    return { superblockAt: at, version, recordedEof };
  }
  return null;
}

type WriteSync = typeof fs.writeSync;

/**
 * Runs `fn` (synchronous h5wasm calls) with writes to file descriptor 2 captured. h5wasm's Emscripten runtime
 * writes HDF5's error stack ("HDF5-DIAG: Error detected …") to fd 2 through `fs.writeSync`; the call is
 * synchronous, so swapping that one function for its duration affects nothing else. Returns the result and the
 * captured text.
 */
export function quietly<T>(fn: () => T): { value: T; diag: string } {
  const mod = fs as unknown as { writeSync: WriteSync };
  const orig = mod.writeSync;
  let diag = '';
  const capture = (fd: number, buffer: unknown, ...rest: unknown[]): number => {
    if (fd !== 2) return (orig as (...a: unknown[]) => number)(fd, buffer, ...rest);
    if (typeof buffer === 'string') {
      diag += buffer;
      return Buffer.byteLength(buffer);
    }
    const b = buffer as Uint8Array;
    const offset = typeof rest[0] === 'number' ? rest[0] : 0;
    const length = typeof rest[1] === 'number' ? rest[1] : b.length - offset;
    diag += Buffer.from(b.buffer, b.byteOffset + offset, length).toString('utf8');
    return length;
  };
  mod.writeSync = capture as WriteSync;
  // Emscripten's own messages (e.g. "Cannot enlarge memory…" when a corrupt size makes HDF5 ask for gigabytes) go
  // through console.error, which writes to process.stderr: capture those too.
  const stderr = process.stderr as unknown as { write: (chunk: unknown, ...rest: unknown[]) => boolean };
  const origWrite = stderr.write;
  stderr.write = (chunk: unknown) => {
    diag += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    return true;
  };
  try {
    return { value: fn(), diag };
  } finally {
    mod.writeSync = orig;
    stderr.write = origWrite;
  }
}

/** The outermost and innermost messages of a captured HDF5 error stack. */
export function summariseDiag(diag: string): string {
  const msgs: string[] = [];
  for (const line of diag.split('\n')) {
    const m = /#\d+: .* in (\S+)\(\): (.*)$/.exec(line);
    if (m) msgs.push(`${m[1]}(): ${m[2]!.trim()}`);
  }
  if (msgs.length === 0) return diag.trim().split('\n')[0] ?? '';
  return msgs.length === 1 ? msgs[0]! : `${msgs[0]} … ${msgs[msgs.length - 1]}`;
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
}

/**
 * Runs h5wasm calls for `file` quietly. A FileFormatError thrown inside passes through; any other exception, or any
 * HDF5 error output, becomes a FileFormatError saying the file is corrupt or truncated (h5wasm often just returns
 * empty results after printing an error).
 */
function guarded<T>(file: string, where: string, fn: () => T): T {
  const { value, diag } = quietly((): { ok: T } | { err: unknown } => {
    try {
      return { ok: fn() };
    } catch (err) {
      return { err };
    }
  });
  // HDF5 error output means h5wasm's answers (often just empty lists) cannot be trusted: report that first.
  if (diag) {
    throw new FileFormatError(
      file,
      `${where}: HDF5 read error (${summariseDiag(diag)}); the file is corrupt or truncated`,
    );
  }
  if ('err' in value) {
    if (value.err instanceof FileFormatError) throw value.err;
    throw new FileFormatError(
      file,
      `${where}: HDF5 read error (${errorText(value.err)}); the file is corrupt or truncated`,
    );
  }
  return value.ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared conversion.

/** Values → 0/1 bytes (non-zero → 1); `nonBinary` says whether anything other than 0/1 was seen. */
function binarise(
  values: ArrayLike<number | bigint>,
  index: (k: number) => number,
  n: number,
): { data: Uint8Array; nonBinary: boolean } {
  const data = new Uint8Array(n);
  let nonBinary = false;
  for (let k = 0; k < n; k++) {
    const v = Number(values[index(k)]!);
    if (v === 0) continue;
    if (v !== 1) nonBinary = true;
    data[k] = 1;
  }
  return { data, nonBinary };
}

function describeValues(values: ArrayLike<number | bigint>): string {
  const seen = new Set<number>();
  for (let k = 0; k < values.length && seen.size < 6; k++) seen.add(Number(values[k]!));
  return [...seen]
    .sort((a, b) => a - b)
    .slice(0, 5)
    .join(', ');
}

abstract class BaseDataset implements GtsegsDataset {
  abstract readonly format: GtsegsFormat;
  abstract readonly length: number;
  private warned = false;
  protected closed = false;

  constructor(
    readonly file: string,
    private readonly warnFn: ((message: string) => void) | undefined,
  ) {}

  protected fail(problem: string): never {
    throw new FileFormatError(this.file, problem);
  }

  protected checkIndex(i: number): void {
    if (this.closed) throw new Error(`${this.file}: data set is closed`);
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new RangeError(`${this.file}: image index ${i} out of range [0, ${this.length})`);
    }
  }

  protected nonBinaryMask(i: number, values: ArrayLike<number | bigint>): void {
    if (this.warned) return;
    this.warned = true;
    this.warnFn?.(
      `${this.file}: mask ${i} holds values other than 0/1 (e.g. ${describeValues(values)}); ` +
        'non-zero values are treated as foreground (1). Reported once for this file.',
    );
  }

  protected checkMaskSize(i: number, image: RgbImage, mh: number, mw: number): void {
    if (mh !== image.height || mw !== image.width) {
      this.fail(`mask ${i} is ${mh}×${mw} (H×W) but image ${i} is ${image.height}×${image.width}; they must match`);
    }
  }

  abstract get(i: number): GtsegsItem;

  close(): void {
    this.closed = true;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HDF5 / MATLAB v7.3.

const H5T_INTEGER = 0;
const H5T_FLOAT = 1;
const H5T_REFERENCE = 7;
const H5T_ENUM = 8;

interface H5Meta {
  type: number;
  size: number;
  signed?: boolean;
  shape?: number[] | null;
}

function describeH5(ds: Dataset): string {
  const m = ds.metadata as H5Meta;
  const shape = ds.shape ?? [];
  let t: string;
  if (m.type === H5T_INTEGER) t = `${m.signed ? 'int' : 'uint'}${8 * m.size}`;
  else if (m.type === H5T_FLOAT) t = `float${8 * m.size}`;
  else if (m.type === H5T_REFERENCE) t = 'object references';
  else t = `HDF5 type class ${m.type} (${m.size} bytes)`;
  return `${t} of shape ${shapeString(shape)}`;
}

function isRefDataset(ds: Dataset): boolean {
  return (ds.metadata as H5Meta).type === H5T_REFERENCE;
}

class Hdf5Gtsegs extends BaseDataset {
  readonly length: number;

  constructor(
    file: string,
    readonly format: GtsegsFormat,
    private readonly h5: InstanceType<typeof h5wasm.File>,
    private readonly imgRefs: unknown[],
    private readonly gtRefs: unknown[],
    private readonly idRefs: unknown[] | null,
    warn: ((message: string) => void) | undefined,
  ) {
    super(file, warn);
    this.length = imgRefs.length;
  }

  /** Dereferences an object reference to a dataset, or fails naming `where`. */
  private deref(ref: unknown, where: string): Dataset {
    if (!(ref instanceof Reference)) this.fail(`${where}: expected an HDF5 object reference, found ${String(ref)}`);
    const { value, diag } = quietly(() => {
      try {
        return this.h5.dereference(ref);
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    });
    if (value instanceof Dataset) return value;
    if (value instanceof Group) this.fail(`${where}: the reference points to the group ${value.path}, not a dataset`);
    const why = value instanceof Error ? errorText(value) : summariseDiag(diag);
    return this.fail(`${where}: dangling object reference (it points to no object${why ? `: ${why}` : ''})`);
  }

  /** Reads a whole dataset, turning HDF5 errors (corrupt or cut-off chunks) into a FileFormatError. */
  private read(ds: Dataset, where: string): ArrayLike<number | bigint> {
    const { value, diag } = quietly(() => {
      try {
        return ds.value;
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    });
    if (value instanceof Error || diag) {
      const why = value instanceof Error ? errorText(value) : summariseDiag(diag);
      this.fail(`${where} (${ds.path}): cannot read the data (${why}); the file is corrupt or truncated`);
    }
    if (value === null || typeof value !== 'object' || !('length' in value)) {
      this.fail(`${where} (${ds.path}): expected numeric data, found ${typeof value}`);
    }
    return value as ArrayLike<number | bigint>;
  }

  get(i: number): GtsegsItem {
    this.checkIndex(i);
    return guarded(this.file, `image ${i}`, () => this.read1(i));
  }

  private read1(i: number): GtsegsItem {
    const imgWhere = `image ${i} (/value/img[${i}])`;
    const imgDs = this.deref(this.imgRefs[i], imgWhere);
    const im = imgDs.metadata as H5Meta;
    const shape = imgDs.shape ?? [];
    if (im.type !== H5T_INTEGER || im.size !== 1 || im.signed || shape.length !== 3 || shape[0] !== 3) {
      this.fail(
        `${imgWhere} → ${imgDs.path}: expected uint8 data of shape (3, W, H) (a MATLAB H×W×3 uint8 RGB image), ` +
          `found ${describeH5(imgDs)}`,
      );
    }
    const W = shape[1]!;
    const H = shape[2]!;
    const raw = this.read(imgDs, imgWhere);
    if (raw.length !== 3 * W * H) this.fail(`${imgWhere}: expected ${3 * W * H} values, read ${raw.length}`);
    const data = new Uint8Array(H * W * 3);
    // MATLAB's column-major H×W×3 seen as (3, W, H): pixel (y, x, c) = raw[(c·W + x)·H + y].
    let q = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        data[q++] = Number(raw[x * H + y]!);
        data[q++] = Number(raw[(W + x) * H + y]!);
        data[q++] = Number(raw[(2 * W + x) * H + y]!);
      }
    }
    const image: RgbImage = { width: W, height: H, data };

    const gtWhere = `mask ${i} (/value/gt[${i}])`;
    let maskDs = this.deref(this.gtRefs[i], gtWhere);
    if (isRefDataset(maskDs)) {
      // The usual layout: a 1×1 cell (an array of references) around the mask: Chefer's `[0, 0]`.
      const cell = this.read(maskDs, gtWhere) as unknown as unknown[];
      if (cell.length < 1) this.fail(`${gtWhere} → ${maskDs.path}: expected a 1×1 cell holding the mask, it is empty`);
      maskDs = this.deref(cell[0], `${gtWhere} → ${maskDs.path}[0]`);
    }
    const mm = maskDs.metadata as H5Meta;
    const mshape = maskDs.shape ?? [];
    if (![H5T_INTEGER, H5T_FLOAT, H5T_ENUM].includes(mm.type) || mshape.length !== 2) {
      this.fail(`${gtWhere} → ${maskDs.path}: expected a numeric mask of shape (W, H), found ${describeH5(maskDs)}`);
    }
    const mw = mshape[0]!;
    const mh = mshape[1]!;
    this.checkMaskSize(i, image, mh, mw);
    const mraw = this.read(maskDs, gtWhere);
    if (mraw.length !== mw * mh) this.fail(`${gtWhere}: expected ${mw * mh} values, read ${mraw.length}`);
    // Stored (W, H): mask (y, x) = mraw[x·H + y].
    const { data: mdata, nonBinary } = binarise(mraw, (k) => (k % mw) * mh + Math.floor(k / mw), mw * mh);
    if (nonBinary) this.nonBinaryMask(i, mraw);

    const item: GtsegsItem = { image, mask: { width: mw, height: mh, data: mdata } };
    if (this.idRefs) item.id = this.readId(i);
    return item;
  }

  private readId(i: number): string {
    const where = `id ${i} (/value/id[${i}])`;
    const ds = this.deref(this.idRefs![i], where);
    if ('MATLAB_empty' in ds.attrs) return '';
    const m = ds.metadata as H5Meta;
    if (m.type !== H5T_INTEGER)
      this.fail(`${where} → ${ds.path}: expected a MATLAB char array, found ${describeH5(ds)}`);
    const codes = this.read(ds, where);
    let s = '';
    for (let k = 0; k < codes.length; k++) s += String.fromCharCode(Number(codes[k]!));
    return s;
  }

  override close(): void {
    if (!this.closed) this.h5.close();
    super.close();
  }
}

function openHdf5(file: string, format: GtsegsFormat, warn: GtsegsOpenOptions['warn']): GtsegsDataset {
  const { value: opened, diag } = quietly(() => {
    try {
      return new h5wasm.File(file, 'r');
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  });
  if (opened instanceof Error || opened.file_id < 0n) {
    const why = opened instanceof Error ? errorText(opened) : summariseDiag(diag);
    throw new FileFormatError(file, `the HDF5 library cannot open it (${why}); the file is corrupt or truncated`);
  }
  const h5 = opened;
  try {
    return guarded(file, 'reading the file structure', () => inspectHdf5(file, format, h5, warn));
  } catch (e) {
    quietly(() => h5.close());
    throw e;
  }
}

function inspectHdf5(
  file: string,
  format: GtsegsFormat,
  h5: InstanceType<typeof h5wasm.File>,
  warn: GtsegsOpenOptions['warn'],
): GtsegsDataset {
  const top = h5.keys();
  const what = format === 'mat-v7.3' ? 'MATLAB v7.3 MAT-file' : 'HDF5 file';
  const layout = "a struct 'value' with cell fields 'img' and 'gt' (the gtsegs_ijcv.mat layout)";
  if (!top.includes('value')) {
    const names = top.length ? top.map((k) => `/${k}`).join(', ') : 'none';
    throw new FileFormatError(file, `${what} without /value: expected ${layout}; top-level names found: ${names}`);
  }
  const value = h5.get('value');
  if (!(value instanceof Group)) throw new FileFormatError(file, `/value is not a group: expected ${layout}`);
  const fields = value.keys();
  const refList = (name: string, required: boolean): unknown[] | null => {
    if (!fields.includes(name)) {
      if (!required) return null;
      throw new FileFormatError(
        file,
        `/value has no '${name}': expected ${layout}; /value holds: ${fields.join(', ') || 'nothing'}`,
      );
    }
    const ds = value.get(name);
    if (!(ds instanceof Dataset) || !isRefDataset(ds)) {
      const found = ds instanceof Dataset ? describeH5(ds) : `a ${ds?.constructor.name ?? 'missing object'}`;
      throw new FileFormatError(
        file,
        `/value/${name}: expected an (N, 1) array of object references (a MATLAB cell array), found ${found}`,
      );
    }
    // `.value` (not `slice()`, which is broken for references in h5wasm 0.10) gives the N×1 refs flattened.
    const refs = ds.value;
    if (!Array.isArray(refs)) throw new FileFormatError(file, `/value/${name}: cannot read its references`);
    return refs;
  };
  const img = refList('img', true)!;
  const gt = refList('gt', true)!;
  if (img.length !== gt.length) {
    throw new FileFormatError(
      file,
      `/value/img has ${img.length} entries but /value/gt has ${gt.length}; expected one mask per image`,
    );
  }
  let id: unknown[] | null = null;
  try {
    id = refList('id', false);
  } catch {
    id = null; // ids are optional and never read by the reference loader
  }
  if (id && id.length !== img.length) id = null;
  return new Hdf5Gtsegs(file, format, h5, img, gt, id, warn);
}

// ---------------------------------------------------------------------------------------------------------------
// Level-5 MAT.

function describeMat(v: MatValue | undefined): string {
  if (!v) return 'nothing';
  const dims = v.dims.join('×');
  if (v.kind === 'numeric') return `${v.logical ? 'logical' : v.class} array ${dims}`;
  return `${v.kind} ${dims}`;
}

class Mat5Gtsegs extends BaseDataset {
  readonly format = 'mat-level5' as const;
  readonly length: number;

  constructor(
    file: string,
    private readonly img: MatValue[],
    private readonly gt: MatValue[],
    private readonly ids: MatValue[] | null,
    warn: GtsegsOpenOptions['warn'],
  ) {
    super(file, warn);
    this.length = img.length;
  }

  get(i: number): GtsegsItem {
    this.checkIndex(i);
    const v = this.img[i]!;
    if (v.kind !== 'numeric' || v.class !== 'uint8' || v.logical || v.dims.length !== 3 || v.dims[2] !== 3) {
      this.fail(`image ${i} (value.img{${i + 1}}): expected an H×W×3 uint8 RGB array, found ${describeMat(v)}`);
    }
    const image: RgbImage = { height: v.dims[0]!, width: v.dims[1]!, data: v.data as Uint8Array };
    let m = this.gt[i]!;
    if (m.kind === 'cell') {
      if (m.cells.length < 1)
        this.fail(`mask ${i} (value.gt{${i + 1}}): expected a 1×1 cell holding the mask, it is empty`);
      m = m.cells[0]!;
    }
    if (m.kind !== 'numeric' || m.dims.length !== 2) {
      this.fail(`mask ${i} (value.gt{${i + 1}}): expected an H×W numeric or logical mask, found ${describeMat(m)}`);
    }
    const [mh, mw] = m.dims as [number, number];
    this.checkMaskSize(i, image, mh, mw);
    const { data, nonBinary } = binarise(m.data, (k) => k, mh * mw);
    if (nonBinary) this.nonBinaryMask(i, m.data);
    const item: GtsegsItem = { image, mask: { width: mw, height: mh, data } };
    const id = this.ids?.[i];
    if (id?.kind === 'char') item.id = id.text;
    return item;
  }
}

function openMat5(file: string, buf: Uint8Array, warn: GtsegsOpenOptions['warn']): GtsegsDataset {
  const vars = parseMat5(buf, file);
  const layout = "a struct 'value' with cell fields 'img' and 'gt' (the gtsegs_ijcv.mat layout)";
  const value = vars.get('value');
  if (!value) {
    const names = [...vars.keys()].join(', ') || 'none';
    throw new FileFormatError(file, `Level-5 MAT-file without 'value': expected ${layout}; variables found: ${names}`);
  }
  if (value.kind !== 'struct' || value.elements.length !== 1) {
    throw new FileFormatError(file, `'value' is ${describeMat(value)}: expected a 1×1 struct, ${layout}`);
  }
  const fields = value.elements[0]!;
  const cell = (name: string, required: boolean): MatValue[] | null => {
    const c = fields.get(name);
    if (c?.kind === 'cell') return c.cells;
    if (!required) return null;
    throw new FileFormatError(
      file,
      `value.${name}: expected a cell array, found ${describeMat(c)} (fields: ${value.fields.join(', ')})`,
    );
  };
  const img = cell('img', true)!;
  const gt = cell('gt', true)!;
  if (img.length !== gt.length) {
    throw new FileFormatError(
      file,
      `value.img has ${img.length} entries but value.gt has ${gt.length}; expected one mask per image`,
    );
  }
  const ids = cell('id', false);
  return new Mat5Gtsegs(file, img, gt, ids && ids.length === img.length ? ids : null, warn);
}

// ---------------------------------------------------------------------------------------------------------------

function describeStart(head: Uint8Array): string {
  const text = new TextDecoder('latin1').decode(head.subarray(0, 24));
  if (/^[\x20-\x7e\t\r\n]+$/.test(text)) return `text starting '${text.replace(/\s+/g, ' ').trim()}'`;
  return `bytes ${[...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`;
}

/** Opens an ImageNet-segmentation MAT-file (v7.3/HDF5, plain HDF5 or Level-5). */
export async function openGtsegs(file: string, opts: GtsegsOpenOptions = {}): Promise<GtsegsDataset> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : errorText(e);
    throw new FileFormatError(file, `cannot open the segmentation data set: ${why}`);
  }
  let loc: Hdf5Location | null;
  let head: Uint8Array;
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new FileFormatError(file, 'is a directory, expected a MAT-file');
    size = st.size;
    if (size === 0) throw new FileFormatError(file, 'empty file, expected a MATLAB MAT-file (v7.3/HDF5 or Level-5)');
    head = readAt(fd, 0, 128);
    loc = locateHdf5(file, fd, size);
  } finally {
    fs.closeSync(fd);
  }
  if (loc) {
    await h5wasm.ready;
    return openHdf5(file, loc.superblockAt > 0 ? 'mat-v7.3' : 'hdf5', opts.warn);
  }
  if (isMat5Header(head)) return openMat5(file, fs.readFileSync(file), opts.warn);
  const text = new TextDecoder('latin1').decode(head.subarray(0, 20));
  if (text.startsWith('MATLAB 7.3 MAT-file')) {
    throw new FileFormatError(
      file,
      `MATLAB v7.3 header but no HDF5 superblock at byte 512 or later (${size} bytes): the file is truncated or corrupt`,
    );
  }
  if (text.startsWith('MATLAB 5.0 MAT-file')) {
    throw new FileFormatError(file, 'MATLAB 5.0 header text, but the version/endian bytes at 124–127 are invalid');
  }
  throw new FileFormatError(
    file,
    `not a MAT-file: expected a MATLAB v7.3 (HDF5) or Level-5 MAT-file, found ${describeStart(head)}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------

export interface SegModelInput {
  /** The normalised model input, float32 CHW (3 × size.height × size.width). */
  input: Float32Array;
  /** The [0, 1] image before normalisation (ToTensor's output), float32 CHW. */
  unit: Float32Array;
  /** The NEAREST-resized mask, size.height × size.width, 0/1. */
  label: Uint8Array;
  /** The bilinear-resized RGB image the input was computed from (for overlays). */
  picture: RgbImage;
}

/**
 * docs/benchmarks.md#segmentation-preprocessing: image → PIL bilinear `Resize(size)` → ToTensor →
 * Normalize(mean, std); mask → PIL NEAREST `Resize(size)`. Aspect ratio is not kept and nothing is cropped.
 */
export function preprocessSegItem(
  item: { image: RgbImage; mask: SegMask },
  size: ImageSize,
  mean: readonly number[],
  std: readonly number[],
): SegModelInput {
  const picture = resizeRgb(item.image, size);
  // `picture` already has the target size, so toUnitCHW does not resize again.
  const unit = toUnitCHW(picture, size);
  const input = normalizeCHW(unit, mean, std);
  const { width, height, data } = item.mask;
  const label = resizeNearest(data, width, height, 1, size.width, size.height);
  return { input, unit, label, picture };
}
