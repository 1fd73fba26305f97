/**
 * Writes ImageNet-segmentation data in the layout of `gtsegs_ijcv.mat` (a MATLAB v7.3 MAT-file), so that both the
 * official loader (h5py) and `openGtsegs` read it:
 *
 *     512-byte user block   'MATLAB 7.3 MAT-file, Platform: …, Created on: … HDF5 schema 1.00 .' + version 0x0200 'IM'
 *     /value                group, MATLAB_class 'struct'
 *     /value/{id,img,gt,target}   (N, 1) object references, MATLAB_class 'cell'
 *     /#refs#/a             MATLAB's canonical empty (uint64 [0, 0])
 *     /#refs#/<x>           per image: id (uint16 char codes, (len, 1)), image (uint8 (3, W, H)), mask (uint8 (W, H)),
 *                           the 1×1 cell of references around the mask, target (double (1, 1) = 1.0)
 *
 * Images and masks are chunked and gzip-compressed (level 3, as MATLAB does).
 *
 * What h5wasm 0.10.3 cannot do, and how it is handled:
 * - it has no file-creation property for a user block. The HDF5 file is written at offset 0 to a temporary file,
 *   then copied behind the 512-byte MAT header; the superblock's base address is set to 512 and its recorded
 *   end-of-file address moved by 512, exactly what HDF5 itself writes for a file with a 512-byte user block. The file
 *   is written with library-version bounds (earliest, v1.8), which gives a version-0 superblock (no checksum), as
 *   MATLAB writes. (HDF5 would also accept the unpatched base address: it notices the superblock moved and adjusts.)
 * - it cannot write variable-length attributes, so `/value` has no `MATLAB_fields` attribute (MATLAB stores the field
 *   names there as vlen char sequences). The loaders never read it.
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import h5wasm, { type Dataset, type Group, type Reference } from 'h5wasm/node';
import type { RgbImage } from '../data/image.js';
import { quietly, summariseDiag } from './gtsegs.js';

export interface GtsegsWriteItem {
  image: RgbImage;
  mask: { width: number; height: number; data: Uint8Array };
  id?: string;
}

export interface GtsegsWriteOptions {
  /** Put the 512-byte MATLAB v7.3 header in front of the HDF5 data (default true). False writes plain HDF5. */
  userBlock?: boolean;
  /** gzip level for images and masks (default 3). */
  compressionLevel?: number;
}

const USER_BLOCK = 512;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The 128-byte MATLAB v7.3 header (the rest of the 512-byte user block is zero). */
export function matV73Header(date: Date = new Date()): Uint8Array {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const when =
    `${DAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${p2(date.getDate())} ` +
    `${p2(date.getHours())}:${p2(date.getMinutes())}:${p2(date.getSeconds())} ${date.getFullYear()}`;
  const platform =
    process.platform === 'linux' && process.arch === 'x64' ? 'GLNXA64' : `${process.platform}-${process.arch}`;
  const text = `MATLAB 7.3 MAT-file, Platform: ${platform}, Created on: ${when} HDF5 schema 1.00 .`;
  const out = new Uint8Array(USER_BLOCK);
  out.fill(0x20, 0, 116);
  out.set(new TextEncoder().encode(text.slice(0, 116)), 0);
  // bytes 116–123: subsystem data offset (zero); 124–125: version 0x0200 (little-endian); 126–127: 'IM'.
  out[125] = 0x02;
  out[126] = 0x49;
  out[127] = 0x4d;
  return out;
}

/** MATLAB's names for objects under /#refs#: a, b, …, z, aa, ab, … */
function refName(k: number): string {
  let s = '';
  let n = k + 1;
  while (n > 0) {
    n--;
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  }
  return s;
}

/** A chunk shape of at most ~32 KiB: halve the largest axis until it fits. */
function chunkShape(shape: number[], first?: number): number[] {
  const c = [...shape];
  if (first !== undefined) c[0] = first;
  while (c.reduce((a, b) => a * b, 1) > 32768) {
    let k = 0;
    for (let d = 1; d < c.length; d++) if (c[d]! > c[k]!) k = d;
    c[k] = Math.ceil(c[k]! / 2);
  }
  return c;
}

function strAttr(obj: Dataset | Group, name: string, value: string): void {
  // Fixed-length, NUL-terminated ASCII, scalar: what MATLAB writes.
  obj.create_attribute(name, value, [], `A${value.length + 1}`);
}

function checkItem(item: GtsegsWriteItem, i: number): void {
  const { image, mask } = item;
  if (!(image.width > 0 && image.height > 0 && image.data.length === image.width * image.height * 3)) {
    throw new RangeError(
      `item ${i}: image ${image.width}×${image.height} needs ${image.width * image.height * 3} bytes`,
    );
  }
  if (!(mask.width > 0 && mask.height > 0 && mask.data.length === mask.width * mask.height)) {
    throw new RangeError(`item ${i}: mask ${mask.width}×${mask.height} needs ${mask.width * mask.height} bytes`);
  }
}

/** Writes the HDF5 content (superblock at offset 0) to `h5path`. */
function writeHdf5(h5path: string, items: GtsegsWriteItem[], level: number): void {
  const f = new h5wasm.File(h5path, 'w', { libver: ['earliest', 'v108'] });
  if (f.file_id < 0n) throw new Error(`cannot create the HDF5 file ${h5path}`);
  try {
    const refs = f.create_group('#refs#');
    const value = f.create_group('value');
    strAttr(value, 'MATLAB_class', 'struct');
    let next = 0;
    const name = () => refName(next++);

    const empty = refs.create_dataset({ name: name(), data: new BigUint64Array([0n, 0n]), shape: [2], dtype: '<Q' });
    strAttr(empty, 'MATLAB_class', 'canonical empty');
    empty.create_attribute('MATLAB_empty', new Uint8Array([1]), [], '<B');

    const withIds = items.some((it) => it.id !== undefined);
    const idRefs: Reference[] = [];
    const imgRefs: Reference[] = [];
    const gtRefs: Reference[] = [];
    const targetRefs: Reference[] = [];
    for (const item of items) {
      if (withIds) {
        const id = item.id ?? '';
        let ds: Dataset;
        if (id.length === 0) {
          ds = refs.create_dataset({ name: name(), data: new BigUint64Array([0n, 0n]), shape: [2], dtype: '<Q' });
          ds.create_attribute('MATLAB_empty', new Uint8Array([1]), [], '<B');
        } else {
          const codes = Uint16Array.from(id, (ch) => ch.charCodeAt(0));
          ds = refs.create_dataset({ name: name(), data: codes, shape: [codes.length, 1], dtype: '<H' });
        }
        strAttr(ds, 'H5PATH', '/value/id');
        strAttr(ds, 'MATLAB_class', 'char');
        ds.create_attribute('MATLAB_int_decode', new Int32Array([2]), [], '<i4');
        idRefs.push(ds.create_reference());
      }

      const { width: W, height: H, data } = item.image;
      const raw = new Uint8Array(3 * W * H);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const p = (y * W + x) * 3;
          raw[x * H + y] = data[p]!;
          raw[(W + x) * H + y] = data[p + 1]!;
          raw[(2 * W + x) * H + y] = data[p + 2]!;
        }
      }
      const img = refs.create_dataset({
        name: name(),
        data: raw,
        shape: [3, W, H],
        dtype: '<B',
        chunks: chunkShape([3, W, H], 1),
        compression: 'gzip',
        compression_opts: level,
      });
      strAttr(img, 'H5PATH', '/value/img');
      strAttr(img, 'MATLAB_class', 'uint8');
      imgRefs.push(img.create_reference());

      const m = item.mask;
      const mraw = new Uint8Array(m.width * m.height);
      for (let y = 0; y < m.height; y++)
        for (let x = 0; x < m.width; x++) mraw[x * m.height + y] = m.data[y * m.width + x]!;
      const mask = refs.create_dataset({
        name: name(),
        data: mraw,
        shape: [m.width, m.height],
        dtype: '<B',
        chunks: chunkShape([m.width, m.height]),
        compression: 'gzip',
        compression_opts: level,
      });
      strAttr(mask, 'H5PATH', '/value/gt');
      strAttr(mask, 'MATLAB_class', 'uint8');
      const cell = refs.create_dataset({
        name: name(),
        data: [mask.create_reference()],
        shape: [1, 1],
        dtype: 'Reference',
      });
      strAttr(cell, 'H5PATH', '/value/gt');
      strAttr(cell, 'MATLAB_class', 'cell');
      gtRefs.push(cell.create_reference());

      const target = refs.create_dataset({ name: name(), data: new Float64Array([1]), shape: [1, 1], dtype: '<d' });
      strAttr(target, 'H5PATH', '/value/target');
      strAttr(target, 'MATLAB_class', 'double');
      targetRefs.push(target.create_reference());
    }

    const fields: [string, Reference[]][] = [
      ['img', imgRefs],
      ['gt', gtRefs],
      ['target', targetRefs],
    ];
    if (withIds) fields.unshift(['id', idRefs]);
    for (const [field, list] of fields) {
      const ds = value.create_dataset({ name: field, data: list, shape: [list.length, 1], dtype: 'Reference' });
      strAttr(ds, 'H5PATH', '/value');
      strAttr(ds, 'MATLAB_class', 'cell');
    }
  } finally {
    f.close();
  }
}

/**
 * Sets the version-0/1 superblock at the start of `head` (an HDF5 file written at offset 0) to what HDF5 writes
 * when the file has a user block of `ub` bytes: base address = ub, recorded EOF address + ub.
 */
function relocateSuperblock(head: Uint8Array, ub: number): void {
  const version = head[8];
  if (version !== 0 && version !== 1) throw new Error(`unexpected HDF5 superblock version ${version}`);
  const so = head[13]!;
  if (so !== 8) throw new Error(`unexpected HDF5 offset size ${so}`);
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const baseAt = version === 0 ? 24 : 28;
  const eofAt = baseAt + 16;
  if (v.getBigUint64(baseAt, true) !== 0n) throw new Error('HDF5 superblock base address is not 0');
  v.setBigUint64(baseAt, BigInt(ub), true);
  v.setBigUint64(eofAt, v.getBigUint64(eofAt, true) + BigInt(ub), true);
}

/** Writes `items` as a gtsegs_ijcv.mat-style MATLAB v7.3 MAT-file (or plain HDF5 with `userBlock: false`). */
export async function writeGtsegsMat(
  file: string,
  items: GtsegsWriteItem[],
  opts: GtsegsWriteOptions = {},
): Promise<void> {
  items.forEach(checkItem);
  const level = opts.compressionLevel ?? 3;
  await h5wasm.ready;
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'gtsegs-write-'));
  const tmp = path.join(dir, 'data.h5');
  try {
    const { diag } = quietly(() => writeHdf5(tmp, items, level));
    if (diag) throw new Error(`HDF5 error while writing ${file}: ${summariseDiag(diag)}`);
    const src = fs.openSync(tmp, 'r');
    const dst = fs.openSync(file, 'w');
    try {
      const ub = opts.userBlock ?? true;
      if (ub) fs.writeSync(dst, matV73Header());
      const buf = new Uint8Array(1 << 20);
      let pos = 0;
      for (;;) {
        const n = fs.readSync(src, buf, 0, buf.length, pos);
        if (n === 0) break;
        if (pos === 0 && ub) relocateSuperblock(buf, USER_BLOCK);
        fs.writeSync(dst, buf, 0, n);
        pos += n;
      }
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
