/**
 * Refreshes the in-repository golden copy (test/golden/) from a golden folder made by the official code, and
 * reports what changed.
 *
 *   npm run golden:sync -- --from ../shared/golden [--trace trace.txt] [--dry-run]
 *
 * What is kept:
 * - with --trace FILE (written by a test run with BENCH_GOLDEN=<that folder> BENCH_GOLDEN_TRACE=FILE): every file
 *   and folder the tests asked for, and of a safetensors file read tensor by tensor, only those tensors (the file
 *   is rewritten with them, header metadata kept);
 * - without --trace: the same files and tensors as the current manifest (a refresh of the same selection);
 * - always: every README*.md of the source, the provenance of each folder.
 * Text files (md, json, jsonl, txt, csv) are stored as they are under files/; the binaries of each folder go into
 * one brotli bundle (see test/helpers/golden-store.ts). A text reference to a document that is not in this
 * repository is reworded, and the manifest says so.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { brotliCompressSync, constants, inflateSync } from 'node:zlib';
import pako from 'pako';
import {
  bundleFile,
  delta4,
  type Manifest,
  readManifest,
  rebuildInflated,
  regroup,
  STORE,
  type StoredFile,
  sha256,
  type Transform,
} from '../test/helpers/golden-store.js';

const { values: opts } = parseArgs({
  options: {
    from: { type: 'string' },
    trace: { type: 'string' },
    store: { type: 'string', default: STORE },
    'dry-run': { type: 'boolean', default: false },
  },
});
if (!opts.from) {
  console.error('usage: npm run golden:sync -- --from GOLDEN_DIR [--trace FILE] [--dry-run]');
  process.exit(2);
}
const from = resolve(opts.from);
const store = resolve(opts.store!);
if (!existsSync(from) || !statSync(from).isDirectory()) fail(`${from}: not a folder`);

function fail(msg: string): never {
  console.error(`golden:sync: ${msg}`);
  process.exit(1);
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(relative(from, p).split(sep).join('/'));
  }
  return out.sort();
}
const all = walk(from);

/** path → the tensors to keep (undefined: the whole file). */
const selection = new Map<string, Set<string> | undefined>();
const keepWhole = (p: string) => selection.set(p, undefined);
const keepTensor = (p: string, t: string) => {
  if (selection.has(p) && selection.get(p) === undefined) return;
  const s = selection.get(p) ?? new Set<string>();
  s.add(t);
  selection.set(p, s);
};

if (opts.trace) {
  const opened = new Set<string>();
  for (const line of readFileSync(opts.trace, 'utf8').split('\n')) {
    if (!line || line.startsWith('..')) continue; // a path outside the golden folder (a test's own temp copy)
    if (line.endsWith('/')) continue; // a listing: what is under the folder is traced on its own
    const hash = line.indexOf('#');
    const path = hash < 0 ? line : line.slice(0, hash);
    const name = hash < 0 ? undefined : line.slice(hash + 1);
    const under = path === '' ? all : all.filter((f) => f === path || f.startsWith(`${path}/`));
    if (under.length === 0) fail(`${opts.trace}: '${path}' is not in ${from}`);
    if (name === undefined || name === '*') for (const f of under) keepWhole(f);
    else if (name === '') opened.add(path);
    else keepTensor(path, name);
  }
  // Opened through readGoldenTensors but no tensor named: keep it whole rather than empty.
  for (const p of opened) if (!selection.has(p)) keepWhole(p);
  // Keep whole what is whole anyway.
  for (const [p, s] of selection) if (s !== undefined && !p.endsWith('.safetensors')) keepWhole(p);
} else {
  if (!existsSync(join(store, 'manifest.json'))) fail(`no manifest in ${store}: the first sync needs --trace`);
  for (const f of readManifest(store).files) {
    if (f.tensors) for (const t of f.tensors) keepTensor(f.path, t);
    else keepWhole(f.path);
  }
}
for (const f of all) if (/(^|\/)README[^/]*\.md$/.test(f)) keepWhole(f);
for (const p of selection.keys()) if (!all.includes(p)) fail(`${p} is selected but not in ${from}`);

/** A safetensors file with only `keep` (original order, dtypes and metadata; offsets recomputed). */
function pruneSafetensors(buf: Buffer, keep: Set<string>, file: string): { data: Buffer; kept: string[]; of: number } {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  for (const k of keep) if (!names.includes(k)) fail(`${file}: the trace names tensor '${k}', which it does not hold`);
  const out: Record<string, unknown> = {};
  if (header.__metadata__) out.__metadata__ = header.__metadata__;
  const parts: Buffer[] = [];
  let offset = 0;
  const kept: string[] = [];
  for (const k of names) {
    if (!keep.has(k)) continue;
    const e = header[k]!;
    const bytes = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    out[k] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
    kept.push(k);
  }
  let json = JSON.stringify(out);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return { data: Buffer.concat([len, Buffer.from(json, 'utf8'), ...parts]), kept, of: names.length };
}

/**
 * The `inflate` form of a file (see golden-store.ts), or undefined when it holds no zlib stream that pako
 * re-deflates to the same bytes. Candidates are the offsets with a valid zlib header.
 */
function inflateForm(b: Buffer): Buffer | undefined {
  const segments: ([number] | [number, number])[] = [];
  const parts: Buffer[] = [];
  let lit = 0;
  let found = 0;
  const flush = (end: number) => {
    if (end > lit) {
      segments.push([end - lit]);
      parts.push(b.subarray(lit, end));
    }
  };
  for (let i = 0; i + 2 < b.length; i++) {
    if (b[i] !== 0x78 || ((b[i]! << 8) | b[i + 1]!) % 31 !== 0) continue;
    let raw: Buffer;
    let used: number;
    try {
      const r = inflateSync(b.subarray(i), { info: true }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      raw = r.buffer;
      used = r.engine.bytesWritten;
    } catch {
      continue;
    }
    const original = b.subarray(i, i + used);
    const level = ([4, 6, 9, 1, 2, 3, 5, 7, 8] as const).find((l) =>
      Buffer.from(pako.deflate(raw, { level: l })).equals(original),
    );
    if (level === undefined) continue;
    flush(i);
    segments.push([raw.length, level]);
    parts.push(raw);
    found++;
    lit = i + used;
    i = lit - 1;
  }
  if (found === 0) return undefined;
  flush(b.length);
  const index = Buffer.from(JSON.stringify(segments), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(index.length);
  const out = Buffer.concat([len, index, ...parts]);
  if (!rebuildInflated(out).equals(b)) fail('inflate form does not rebuild the file (a bug in golden-sync)');
  return out;
}

const quick = (b: Buffer) =>
  brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_LGWIN]: 24 } }).length;

/**
 * The transforms under which the file alone compresses smallest (brotli quality 5 as the judge): inflate (when
 * the file holds zlib streams), then delta4 or not, then bytes4 or not.
 */
function bestForm(b: Buffer): { transforms: Transform[]; stored: Buffer } {
  const inflated = inflateForm(b);
  const starts: { transforms: Transform[]; stored: Buffer }[] = [{ transforms: [], stored: b }];
  if (inflated) starts.push({ transforms: ['inflate'], stored: inflated });
  let best: { transforms: Transform[]; stored: Buffer; size: number } | undefined;
  for (const s of starts)
    for (const d of [false, true]) {
      const dt = d ? { transforms: [...s.transforms, 'delta4' as const], stored: delta4(s.stored, true) } : s;
      for (const g of [false, true]) {
        const o = g ? { transforms: [...dt.transforms, 'bytes4' as const], stored: regroup(dt.stored, 4, true) } : dt;
        const size = quick(o.stored);
        if (!best || size < best.size) best = { ...o, size };
      }
    }
  return best!;
}

/** Rewordings of references to documents that are not in this repository. */
const REWORD: [RegExp, string][] = [
  [/the mapping in ALGORITHMS\.md Appendix B/g, "the mapping in bench's docs/formats.md (Google ViT npz)"],
];
const TEXT = /\.(md|json|jsonl|txt|csv)$/;

const files: StoredFile[] = [];
const bundleParts = new Map<string, Buffer[]>();
for (const path of [...selection.keys()].sort()) {
  const source = readFileSync(join(from, path));
  let data: Buffer = source;
  let change: string | undefined;
  let tensors: string[] | undefined;
  const keep = selection.get(path);
  if (keep) {
    const p = pruneSafetensors(source, keep, path);
    if (p.kept.length < p.of) {
      data = p.data;
      tensors = p.kept;
      change = `pruned to the ${p.kept.length} of ${p.of} tensors the tests read`;
    }
  }
  if (TEXT.test(path)) {
    let text = data.toString('utf8');
    for (const [re, by] of REWORD) text = text.replace(re, by);
    const notes = /ALGORITHMS\.md/;
    if (notes.test(text))
      fail(`${path} names a reference-notes file that is not in this repository (${notes}): add a rewording`);
    if (text !== data.toString('utf8')) {
      data = Buffer.from(text, 'utf8');
      change = 'a reference to a document outside this repository reworded';
    }
  }
  const entry: StoredFile = { path, size: data.length, sha256: sha256(data), store: 'files' };
  if (data !== source) Object.assign(entry, { source_sha256: sha256(source), change });
  if (tensors) entry.tensors = tensors;
  if (!TEXT.test(path)) {
    const seg = path.split('/');
    const name = seg.length >= 3 ? `${seg[0]}-${seg[1]}` : (seg[0] ?? 'root');
    const parts = bundleParts.get(name) ?? [];
    entry.store = { bundle: name, offset: parts.reduce((a, b) => a + b.length, 0) };
    const form = bestForm(data);
    if (form.transforms.length > 0)
      Object.assign(entry, { transforms: form.transforms, stored_size: form.stored.length });
    parts.push(form.stored);
    bundleParts.set(name, parts);
  }
  files.push(entry);
  if (entry.store === 'files') (entry as StoredFile & { data?: Buffer }).data = data;
}

const bundles: Manifest['bundles'] = {};
const compressed = new Map<string, Buffer>();
for (const [name, parts] of bundleParts) {
  const raw = Buffer.concat(parts);
  bundles[name] = { size: raw.length, sha256: sha256(raw) };
  process.stderr.write(`compressing ${name} (${(raw.length / 2 ** 20).toFixed(1)} MiB) … `);
  const c = brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      // A 128 MiB window (brotli's large-window mode) so that repeats further apart than 16 MiB are found too: the
      // two official HDF5 files hold the same image array, 17 MiB apart once inflated.
      [constants.BROTLI_PARAM_LARGE_WINDOW]: 1,
      [constants.BROTLI_PARAM_LGWIN]: 27,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  });
  process.stderr.write(`${(c.length / 2 ** 20).toFixed(2)} MiB\n`);
  compressed.set(name, c);
}

// What changed, against the current manifest.
const old = existsSync(join(store, 'manifest.json')) ? readManifest(store) : undefined;
const oldBy = new Map((old?.files ?? []).map((f) => [f.path, f]));
const newBy = new Map(files.map((f) => [f.path, f]));
const report: string[] = [];
for (const f of files) {
  const o = oldBy.get(f.path);
  if (!o) report.push(`added    ${f.path} (${f.size} B${f.change ? `; ${f.change}` : ''})`);
  else if (o.sha256 !== f.sha256) report.push(`changed  ${f.path} (${o.size} → ${f.size} B)`);
}
for (const f of old?.files ?? []) if (!newBy.has(f.path)) report.push(`removed  ${f.path}`);
const textBytes = files.filter((f) => f.store === 'files').reduce((a, f) => a + f.size, 0);
const bundleBytes = [...compressed.values()].reduce((a, b) => a + b.length, 0);
const skipped = all.filter((f) => !newBy.has(f));
console.log(report.length ? report.join('\n') : 'no file changed');
console.log(
  `${files.length} files kept of ${all.length} (${skipped.length} not read by any test); stored: ` +
    `${(textBytes / 2 ** 20).toFixed(2)} MiB of text files, ${(bundleBytes / 2 ** 20).toFixed(2)} MiB in ` +
    `${compressed.size} brotli bundles`,
);
if (opts['dry-run']) process.exit(0);

rmSync(join(store, 'files'), { recursive: true, force: true });
rmSync(join(store, 'bundles'), { recursive: true, force: true });
rmSync(join(store, '.cache'), { recursive: true, force: true });
for (const f of files) {
  const withData = f as StoredFile & { data?: Buffer };
  if (withData.data) {
    const out = join(store, 'files', f.path);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, withData.data);
    delete withData.data;
  }
}
for (const [name, c] of compressed) {
  mkdirSync(dirname(bundleFile(store, name)), { recursive: true });
  writeFileSync(bundleFile(store, name), c);
}
const manifest: Manifest = {
  format: 1,
  made_from: `${relative(process.cwd(), from) || from} on ${new Date().toISOString().slice(0, 10)}`,
  files,
  bundles,
};
writeFileSync(join(store, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
console.log(`wrote ${store}`);
