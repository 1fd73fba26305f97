import { crc32, inflateRawSync } from 'node:zlib';
import { FileFormatError } from './host-tensor.js';

/**
 * A strict reader for the zip archives behind PyTorch checkpoints and NumPy .npz files (stored or deflated entries,
 * zip64 included). Every offset and size is checked against the archive before it is used, and every entry read is
 * checked against the size and CRC-32 the central directory records: a corrupt archive is an error, never a tensor
 * with wrong numbers. (fflate's unzipSync, used before, silently shortened entries whose sizes ran past the end and
 * did not look at CRCs.)
 */

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localHeader: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

/** The archive-level error every problem becomes: the wording callers (and users) already know. */
function corrupt(file: string, detail: string): never {
  throw new FileFormatError(file, `not a valid zip archive (truncated or corrupt?): ${detail}`);
}

class Bytes {
  readonly dv: DataView;
  constructor(
    readonly b: Uint8Array,
    readonly file: string,
  ) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  need(pos: number, n: number, what: string): void {
    if (!(pos >= 0 && pos + n <= this.b.length)) {
      corrupt(this.file, `${what} at byte ${pos} (${n} bytes) lies outside the ${this.b.length}-byte file`);
    }
  }
  u16(p: number): number {
    return this.dv.getUint16(p, true);
  }
  u32(p: number): number {
    return this.dv.getUint32(p, true);
  }
  u64(p: number): number {
    const v = this.dv.getBigUint64(p, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
  }
}

function findEocd(z: Bytes): number {
  const b = z.b;
  for (let e = b.length - 22; e >= 0 && b.length - e <= 22 + 0xffff; e--) {
    if (z.u32(e) === EOCD) return e;
  }
  return corrupt(z.file, 'no end-of-central-directory record');
}

/** The entries the central directory lists, all bounds checked. */
export function listZip(bytes: Uint8Array, file: string): ZipEntry[] {
  const z = new Bytes(bytes, file);
  if (bytes.length < 22) corrupt(file, `${bytes.length} bytes, too short for a zip archive`);
  const e = findEocd(z);
  let count = z.u16(e + 10);
  let cdSize = z.u32(e + 12);
  let cdOffset = z.u32(e + 16);
  if (e >= 20 && z.u32(e - 20) === ZIP64_LOCATOR) {
    const at = z.u64(e - 12);
    z.need(at, 56, 'zip64 end-of-central-directory record');
    if (z.u32(at) !== ZIP64_EOCD) corrupt(file, `no zip64 end-of-central-directory record at byte ${at}`);
    count = z.u64(at + 32);
    cdSize = z.u64(at + 40);
    cdOffset = z.u64(at + 48);
  }
  z.need(cdOffset, cdSize, 'central directory');
  if (count * 46 > cdSize) corrupt(file, `${count} entries cannot fit a ${cdSize}-byte central directory`);
  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  let p = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdEnd || z.u32(p) !== CENTRAL)
      corrupt(file, `central directory entry ${i + 1} at byte ${p} is broken`);
    const flags = z.u16(p + 8);
    const method = z.u16(p + 10);
    const crc = z.u32(p + 16);
    let compressedSize = z.u32(p + 20);
    let size = z.u32(p + 24);
    const nameLen = z.u16(p + 28);
    const extraLen = z.u16(p + 30);
    const commentLen = z.u16(p + 32);
    let localHeader = z.u32(p + 42);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) corrupt(file, `central directory entry ${i + 1} runs past the directory`);
    const nameBytes = bytes.subarray(p + 46, p + 46 + nameLen);
    // Bit 11: UTF-8 names; otherwise code page 437, read as latin-1 (torch and NumPy write ASCII names).
    const name = new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(nameBytes);
    // zip64 extra field (id 1): 8-byte values, in this order, for the fields that hold 0xffffffff.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = z.u16(x);
      const len = z.u16(x + 2);
      if (x + 4 + len > xEnd) corrupt(file, `entry '${name}': extra field runs past its header`);
      if (id === 1) {
        let q = x + 4;
        const take = (): number => {
          if (q + 8 > x + 4 + len) corrupt(file, `entry '${name}': zip64 extra field too short`);
          const v = z.u64(q);
          q += 8;
          return v;
        };
        if (size === U32_MAX) size = take();
        if (compressedSize === U32_MAX) compressedSize = take();
        if (localHeader === U32_MAX) localHeader = take();
      }
      x += 4 + len;
    }
    if (flags & 1) corrupt(file, `entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8)
      corrupt(file, `entry '${name}' uses compression method ${method} (expected stored or deflate)`);
    if (method === 0 && compressedSize !== size) {
      corrupt(file, `stored entry '${name}' has compressed size ${compressedSize} but size ${size}`);
    }
    if (names.has(name)) corrupt(file, `entry '${name}' appears twice`);
    names.add(name);
    // Names are not covered by the CRC; as Python's zipfile does, require the local header's copy to agree (a
    // corrupt name would otherwise make an entry vanish from an .npz without a word).
    z.need(localHeader, 30, `local header of '${name}'`);
    if (z.u32(localHeader) !== LOCAL) corrupt(file, `entry '${name}': no local header at byte ${localHeader}`);
    const localLen = z.u16(localHeader + 26);
    z.need(localHeader + 30, localLen, `local header of '${name}'`);
    const localName = bytes.subarray(localHeader + 30, localHeader + 30 + localLen);
    if (localLen !== nameLen || !localName.every((c, k) => c === nameBytes[k])) {
      corrupt(file, `entry '${name}': the name in its local header differs from the central directory's`);
    }
    entries.push({ name, method, crc, compressedSize, size, localHeader });
    p = next;
  }
  // The count and the directory size are recorded separately: if they disagree, entries would go missing silently.
  if (p !== cdEnd) corrupt(file, `the central directory holds ${cdEnd - p} bytes beyond its ${count} recorded entries`);
  return entries;
}

/** The bytes of one entry, checked against the size and CRC-32 the directory records. */
export function readZipEntry(bytes: Uint8Array, entry: ZipEntry, file: string): Uint8Array {
  const z = new Bytes(bytes, file);
  const { name, localHeader } = entry;
  z.need(localHeader, 30, `local header of '${name}'`);
  if (z.u32(localHeader) !== LOCAL) corrupt(file, `entry '${name}': no local header at byte ${localHeader}`);
  const start = localHeader + 30 + z.u16(localHeader + 26) + z.u16(localHeader + 28);
  z.need(start, entry.compressedSize, `data of '${name}'`);
  const raw = bytes.subarray(start, start + entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) {
    data = new Uint8Array(raw); // a copy: callers keep entries beyond the archive's lifetime
  } else {
    try {
      // One byte of headroom, so that data inflating to more than the recorded size is noticed.
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size + 1) });
    } catch (e) {
      const why =
        (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'more data than recorded' : (e as Error).message;
      return corrupt(file, `entry '${name}' does not inflate (${why})`);
    }
  }
  if (data.length !== entry.size)
    corrupt(file, `entry '${name}' holds ${data.length} bytes, the directory records ${entry.size}`);
  const crc = crc32(data) >>> 0;
  if (crc !== entry.crc >>> 0) {
    corrupt(
      file,
      `entry '${name}' fails its CRC-32 check (recorded ${entry.crc.toString(16).padStart(8, '0')}, computed ${crc.toString(16).padStart(8, '0')})`,
    );
  }
  return data;
}

/** The entries whose names pass `filter`, read and checked. */
export function unzipChecked(
  bytes: Uint8Array,
  file: string,
  filter: (name: string) => boolean = () => true,
): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const e of listZip(bytes, file)) if (filter(e.name)) out.set(e.name, readZipEntry(bytes, e, file));
  return out;
}
