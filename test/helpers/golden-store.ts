import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { brotliDecompressSync, constants } from 'node:zlib';
import pako from 'pako';

/**
 * The in-repository copy of the golden data (test/golden/). Its layout:
 * - `manifest.json`: every file of the golden tree with its size and SHA-256, and where it is stored;
 * - `files/<path>`: text files (README, JSON, JSONL, vocabularies), stored as they are so that they can be read
 *   and diffed in the repository;
 * - `bundles/<name>.br`: the binary files of one golden folder (`vit/S1`, `e2e/seg_S1`, …), concatenated in
 *   manifest order and compressed with brotli as one stream (large-window mode, 128 MiB), so that the copies of one set of weights in six
 *   container formats cost about one. Before that, a file may go through reversible transforms that make it
 *   compress better (`transforms`, applied in order; undone in reverse order when unpacking):
 *   - `inflate`: the zlib streams inside the file (the deflated chunks of an HDF5 file) are stored inflated, with
 *     their level; unpacking deflates them again with pako (a port of zlib 1.2), which gives the same bytes as the
 *     zlib that h5py used. Only streams that re-deflate to the identical bytes are stored this way.
 *   - `delta4`: each 4-byte little-endian word is replaced by its difference from the word before (mod 2³²):
 *     neighbouring values of a smooth map differ in their low bits only;
 *   - `bytes4`: the bytes are regrouped by their position modulo 4 (all first bytes of the float32 values, then
 *     all second bytes, …), which brotli compresses better than interleaved floats.
 *   The file's SHA-256 is checked after the transforms are undone.
 * The tests read an unpacked tree, made once per manifest under `test/golden/.cache/<manifest hash>/`.
 */
export const STORE = resolve(import.meta.dirname, '../golden');

export interface StoredFile {
  /** Path inside the golden tree, with `/`. */
  path: string;
  size: number;
  sha256: string;
  /** `files`: stored as is under files/; otherwise the name of its bundle. */
  store: 'files' | { bundle: string; offset: number };
  /** Set when the stored file is not byte-identical to the source (see `change`). */
  source_sha256?: string;
  /** What was changed: a safetensors file pruned to the tensors the tests read, or a text edit. */
  change?: string;
  /** The tensors kept, when a safetensors file was pruned. */
  tensors?: string[];
  /** Reversible transforms applied before bundling (see above), and the size of the transformed bytes. */
  transforms?: Transform[];
  stored_size?: number;
}

export type Transform = 'inflate' | 'delta4' | 'bytes4';

export interface Manifest {
  format: 1;
  /** Where the copy was made from, and when. */
  made_from: string;
  files: StoredFile[];
  bundles: Record<string, { size: number; sha256: string }>;
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** The manifest's bytes; a missing manifest fails naming it. */
function manifestBytes(store: string): Buffer {
  const file = join(store, 'manifest.json');
  if (!existsSync(file))
    throw new Error(
      `golden file missing: ${file} (the in-repository golden copy; or set BENCH_GOLDEN to a golden folder)`,
    );
  return readFileSync(file);
}

export function readManifest(store = STORE): Manifest {
  return JSON.parse(manifestBytes(store).toString('utf8')) as Manifest;
}

/** The bundle's file under the store. */
export const bundleFile = (store: string, name: string): string => join(store, 'bundles', `${name}.br`);

/**
 * Unpacks the store into its cache folder (once per manifest; an earlier unpacking of the same manifest is reused)
 * and returns the folder. Every file is checked against its SHA-256. Safe when several test processes start at
 * once: each unpacks into a folder of its own and renames it into place; the first rename wins.
 */
export function unpackGolden(store = STORE): string {
  const manifestText = manifestBytes(store);
  const manifest = JSON.parse(manifestText.toString('utf8')) as Manifest;
  const target = join(store, '.cache', sha256(manifestText).slice(0, 16));
  if (existsSync(join(target, '.complete'))) return target;
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
  rmSync(tmp, { recursive: true, force: true });
  const bundles = new Map<string, Buffer>();
  const bundle = (name: string): Buffer => {
    let b = bundles.get(name);
    if (!b) {
      const file = bundleFile(store, name);
      if (!existsSync(file)) throw new Error(`golden file missing: ${file} (named in ${join(store, 'manifest.json')})`);
      b = brotliDecompressSync(readFileSync(file), { params: { [constants.BROTLI_DECODER_PARAM_LARGE_WINDOW]: 1 } });
      const want = manifest.bundles[name];
      if (!want || b.length !== want.size || sha256(b) !== want.sha256)
        throw new Error(
          `golden bundle ${file} does not match manifest.json (size or SHA-256); run npm run golden:sync`,
        );
      bundles.set(name, b);
    }
    return b;
  };
  for (const f of manifest.files) {
    let data: Buffer;
    if (f.store === 'files') {
      const src = join(store, 'files', f.path);
      if (!existsSync(src)) throw new Error(`golden file missing: ${src} (named in ${join(store, 'manifest.json')})`);
      data = readFileSync(src);
    } else {
      data = bundle(f.store.bundle).subarray(f.store.offset, f.store.offset + (f.stored_size ?? f.size));
      for (const t of [...(f.transforms ?? [])].reverse()) data = undo(t, data);
    }
    if (data.length !== f.size || sha256(data) !== f.sha256)
      throw new Error(`golden file ${f.path} in ${store} does not match its SHA-256 in manifest.json`);
    const out = join(tmp, f.path);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, data);
  }
  writeFileSync(join(tmp, '.complete'), `${manifest.files.length} files\n`);
  try {
    renameSync(tmp, target);
  } catch (e) {
    // Another process renamed its copy into place first: use that one.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(target, '.complete'))) throw e;
  }
  return target;
}

/** Regroups bytes by position modulo k (`forward`), or back. A tail shorter than k stays in place. */
export function regroup(b: Buffer, k: number, forward: boolean): Buffer {
  const m = Math.floor(b.length / k);
  const out = Buffer.alloc(b.length);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < k; j++) {
      if (forward) out[j * m + i] = b[i * k + j]!;
      else out[i * k + j] = b[j * m + i]!;
    }
  b.copy(out, m * k, m * k);
  return out;
}

/**
 * The `inflate` form: a 4-byte little-endian length, a JSON list of segments (`[n]`: n bytes as they are;
 * `[n, level]`: n inflated bytes to deflate at that level), then the segments' bytes.
 */
export function rebuildInflated(b: Buffer): Buffer {
  const n = b.readUInt32LE(0);
  const segments = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as ([number] | [number, number])[];
  const parts: Uint8Array[] = [];
  let p = 4 + n;
  for (const [len, level] of segments) {
    const piece = b.subarray(p, p + len);
    parts.push(level === undefined ? piece : pako.deflate(piece, { level: level as pako.DeflateOptions['level'] }));
    p += len;
  }
  return Buffer.concat(parts);
}

/** Word-wise differences (`forward`) or their running sums, over the whole 4-byte words of b. */
export function delta4(b: Buffer, forward: boolean): Buffer {
  const out = Buffer.from(b);
  const n = Math.floor(b.length / 4);
  if (forward)
    for (let i = n - 1; i >= 1; i--) out.writeInt32LE((b.readInt32LE(4 * i) - b.readInt32LE(4 * i - 4)) | 0, 4 * i);
  else for (let i = 1; i < n; i++) out.writeInt32LE((out.readInt32LE(4 * i) + out.readInt32LE(4 * i - 4)) | 0, 4 * i);
  return out;
}

function undo(t: Transform, b: Buffer): Buffer {
  if (t === 'bytes4') return regroup(b, 4, false);
  if (t === 'delta4') return delta4(b, false);
  if (t === 'inflate') return rebuildInflated(b);
  throw new Error(`golden manifest names an unknown transform '${t}'`);
}
