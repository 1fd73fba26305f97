import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import h5wasm, { type Dataset } from 'h5wasm/node';
import {
  type ExplanationRow,
  ExplanationWriter,
  guessChunk,
  mergeExplanationFiles,
  readExplanations,
} from '../src/formats/expl-hdf5.js';
import { FileFormatError } from '../src/formats/host-tensor.js';
import { goldenPath, readJson } from './helpers/golden.js';

const E2E = ['e2e', 'perturb_S1'];
const METHODS = ['transformer_attribution', 'rollout'] as const;
const goldenFile = (m: string) => goldenPath(...E2E, 'visualizations', m, 'top', 'not_ablation', 'results.hdf5');

interface GoldenVis {
  vis_sha256: string;
  image_sha256: string;
  hdf5_datasets: Record<string, { shape: number[]; chunks: number[]; compression_opts: number }>;
}
const RESULTS = readJson<{ visualizations: Record<string, GoldenVis>; images: { label: number }[] }>(
  ...E2E,
  'results.json',
);

const tmp = fs.mkdtempSync(path.join(tmpdir(), 'expl-hdf5-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sha256(a: ArrayBufferView): string {
  return createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');
}

const H = 224;
const W = 224;
const ATTRS = { method: 'transformer_attribution', vis_class: 'top', model: 'S1', bench_version: '0.1.0', seed: 3 };

/** A deterministic row for data-set index i. */
function row(i: number, h = H, w = W): ExplanationRow {
  const vis = new Float32Array(h * w);
  const image = new Float32Array(3 * h * w);
  for (let k = 0; k < vis.length; k++) vis[k] = ((k * 7 + i * 131) % 1000) / 999;
  for (let k = 0; k < image.length; k++) image[k] = ((k * 13 + i * 17) % 256) / 255;
  vis[i] = Number.NaN; // NaN maps exist in the reference (constant maps)
  return { vis, image, target: (i * 37) % 1000, index: i };
}

function assertRows(
  file: string,
  got: ReturnType<Awaited<ReturnType<typeof readExplanations>>['readRows']>,
  ids: number[],
): void {
  const plane = H * W;
  ids.forEach((i, k) => {
    const r = row(i);
    assert.deepEqual(got.vis.subarray(k * plane, (k + 1) * plane), r.vis, `${file} vis row ${k}`);
    assert.deepEqual(got.image.subarray(k * 3 * plane, (k + 1) * 3 * plane), r.image, `${file} image row ${k}`);
    assert.equal(got.target[k], r.target);
    assert.equal(got.index[k], i);
  });
}

async function rejectsFormat(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${String(e)}`);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  });
}

test("guessChunk reproduces h5py's guess_chunk", () => {
  // [shape, typesize, h5py 3.7 guess_chunk(shape, None, typesize)]
  const cases: [number[], number, number[]][] = [
    [[1, 1, 224, 224], 4, [1, 1, 56, 56]],
    [[1, 3, 224, 224], 4, [1, 1, 56, 56]],
    [[1], 4, [1]],
    [[1], 8, [1]],
    [[1, 1, 384, 384], 4, [1, 1, 48, 96]],
    [[1, 3, 384, 384], 4, [1, 1, 48, 96]],
    [[1, 1, 112, 112], 4, [1, 1, 28, 56]],
    [[1, 3, 32, 32], 4, [1, 2, 32, 32]],
    [[0, 1, 224, 224], 4, [64, 1, 14, 28]],
    [[1000, 1000], 8, [63, 63]],
    [[1, 1, 7, 9], 4, [1, 1, 7, 9]],
    [[3, 5000, 5000], 8, [1, 79, 157]],
  ];
  for (const [shape, size, want] of cases) assert.deepEqual(guessChunk(shape, size), want, `${shape} × ${size}`);
});

describe('golden results.hdf5 written by the official script (h5py)', () => {
  for (const m of METHODS) {
    test(`${m}: 22 rows, contents and layout`, async () => {
      const g = RESULTS.visualizations[`${m}/top`]!;
      const r = await readExplanations(goldenFile(m), { size: { height: 224, width: 224 } });
      try {
        assert.equal(r.rows, 22);
        assert.equal(r.height, 224);
        assert.equal(r.width, 224);
        assert.equal(r.hasIndex, false);
        assert.deepEqual(r.indices, [...Array(22).keys()]);
        assert.deepEqual(r.attrs, {});
        const all = r.readRows(0, 22);
        assert.equal(sha256(all.vis), g.vis_sha256);
        assert.equal(sha256(all.image), g.image_sha256);
        assert.deepEqual(
          [...all.target],
          RESULTS.images.map((im) => im.label),
        );
        const some = r.readRows(5, 3);
        assert.deepEqual(some.vis, all.vis.subarray(5 * H * W, 8 * H * W));
        assert.deepEqual(some.index, [5, 6, 7]);
        assert.throws(() => r.readRows(20, 3), RangeError);
        assert.equal(r.readRows(22, 0).vis.length, 0);
      } finally {
        r.close();
      }
      // the layout as h5wasm reports it, against results.json
      await h5wasm.ready;
      const f = new h5wasm.File(goldenFile(m), 'r');
      try {
        for (const name of ['vis', 'image', 'target']) {
          const ds = f.get(name) as Dataset;
          const want = g.hdf5_datasets[name]!;
          assert.deepEqual(ds.shape, want.shape);
          assert.deepEqual(ds.metadata.chunks, want.chunks);
          assert.deepEqual(ds.filters, [{ id: 1, name: 'deflate', cd_values: [want.compression_opts] }]);
          assert.ok(ds.metadata.maxshape![0]! >= 2 ** 63);
        }
        assert.equal((f.get('target') as Dataset).dtype, '<i');
        assert.equal((f.get('vis') as Dataset).dtype, '<f');
      } finally {
        f.close();
      }
    });
  }

  test('a folder holding results.hdf5 is accepted, as ImagenetResults takes one', async () => {
    const r = await readExplanations(path.dirname(goldenFile('rollout')));
    assert.equal(r.rows, 22);
    r.close();
  });

  test('a copy of a golden file can be resumed: index 0…21 is added, then rows append', async () => {
    const file = path.join(tmp, 'golden-copy.hdf5');
    fs.copyFileSync(goldenFile('rollout'), file);
    const w = await ExplanationWriter.open(file);
    assert.equal(w.rows, 22);
    w.append([row(22)]);
    w.close();
    const r = await readExplanations(file);
    assert.equal(r.rows, 23);
    assert.deepEqual(r.indices, [...Array(23).keys()]);
    assertRows(file, r.readRows(22, 1), [22]);
    assert.equal(sha256(r.readRows(0, 22).vis), RESULTS.visualizations['rollout/top']!.vis_sha256);
    r.close();
  });
});

describe('writing', () => {
  test('5 rows in two appends read back identical; the layout is the reference one', async () => {
    const file = path.join(tmp, 'sub', 'five.hdf5');
    const w = await ExplanationWriter.create(file, { height: H, width: W, attrs: ATTRS });
    assert.equal(w.rows, 0);
    w.append([row(0), row(1)]);
    w.append([row(2), row(3), row(4)]);
    assert.equal(w.rows, 5);
    w.close();
    const r = await readExplanations(file);
    assert.equal(r.rows, 5);
    assert.equal(r.hasIndex, true);
    assert.deepEqual(r.indices, [0, 1, 2, 3, 4]);
    assert.deepEqual(r.attrs, ATTRS);
    assertRows(file, r.readRows(0, 5), [0, 1, 2, 3, 4]);
    r.close();
    const f = new h5wasm.File(file, 'r');
    try {
      const want: Record<string, [number[], number[], string]> = {
        vis: [[5, 1, H, W], [1, 1, 56, 56], '<f'],
        image: [[5, 3, H, W], [1, 1, 56, 56], '<f'],
        target: [[5], [1], '<i'],
        index: [[5], [1], '<q'],
      };
      for (const [name, [shape, chunks, dtype]] of Object.entries(want)) {
        const ds = f.get(name) as Dataset;
        assert.deepEqual(ds.shape, shape, name);
        assert.deepEqual(ds.metadata.chunks, chunks, name);
        assert.equal(ds.dtype, dtype, name);
        assert.deepEqual(ds.filters, [{ id: 1, name: 'deflate', cd_values: [4] }], name);
        assert.ok(ds.metadata.maxshape![0]! >= 2 ** 63, name);
        assert.deepEqual(ds.metadata.maxshape!.slice(1), shape.slice(1), name);
      }
    } finally {
      f.close();
    }
  });

  test('after append (which flushes), a copy of the still-open file reads back the rows', async () => {
    const file = path.join(tmp, 'live.hdf5');
    const copy = path.join(tmp, 'live-copy.hdf5');
    const w = await ExplanationWriter.create(file, { height: H, width: W, attrs: ATTRS });
    w.append([row(0), row(1), row(2)]);
    w.flush();
    fs.copyFileSync(file, copy);
    const r = await readExplanations(copy);
    assert.equal(r.rows, 3);
    assertRows(copy, r.readRows(0, 3), [0, 1, 2]);
    r.close();
    w.close();
  });

  test('reopen and append more; default index = row position; duplicate indices are refused', async () => {
    const file = path.join(tmp, 'resume.hdf5');
    const w = await ExplanationWriter.create(file, { height: H, width: W, attrs: ATTRS });
    w.append([row(0), row(1), row(2)]);
    w.close();
    const w2 = await ExplanationWriter.open(file);
    assert.equal(w2.rows, 3);
    assert.deepEqual(w2.attrs, ATTRS);
    assert.equal(w2.repaired, null);
    const { index: _, ...noIndex } = row(3);
    w2.append([noIndex, row(4)]);
    assert.throws(() => w2.append([row(2)]), /index 2 is already in the file/);
    assert.throws(() => w2.append([{ ...row(9), vis: new Float32Array(10) }]), /vis has 10 values/);
    assert.equal(w2.rows, 5);
    w2.close();
    const r = await readExplanations(file);
    assert.equal(r.rows, 5);
    assertRows(file, r.readRows(0, 5), [0, 1, 2, 3, 4]);
    r.close();
  });

  test('rows past the committed count are never read, and open() trims them', async () => {
    // What a kill in the middle of an append's first flush can leave on disk: the datasets' new lengths, with
    // chunks never written (they read as the fill value, so /index would hold 0 twice), and /rows not yet raised.
    const file = path.join(tmp, 'interrupted.hdf5');
    const w = await ExplanationWriter.create(file, { height: H, width: W });
    w.append([row(0), row(1)]);
    w.close();
    const f = new h5wasm.File(file, 'a');
    (f.get('vis') as Dataset).resize([3, 1, H, W]);
    (f.get('image') as Dataset).resize([3, 3, H, W]);
    (f.get('index') as Dataset).resize([3]);
    f.close();
    const r0 = await readExplanations(file);
    assert.equal(r0.rows, 2);
    assert.deepEqual(r0.indices, [0, 1]);
    assert.deepEqual([...r0.readTargets()], [row(0).target, row(1).target]);
    r0.close();
    const w2 = await ExplanationWriter.open(file);
    assert.equal(w2.rows, 2);
    assert.match(
      w2.repaired ?? '',
      /trimmed to the 2 complete rows \(lengths were vis 3, image 3, target 2, index 3\)/,
    );
    w2.append([row(2)]);
    w2.close();
    const r = await readExplanations(file);
    assert.equal(r.rows, 3);
    assertRows(file, r.readRows(0, 3), [0, 1, 2]);
    r.close();
  });

  test('a file written before /rows existed: index is the commit; open() trims to it and adds /rows', async () => {
    // The earlier writer's layout, two rows, then a third cut short before its index was written.
    const file = path.join(tmp, 'no-rows.hdf5');
    const rows = [row(0), row(1)];
    const f = new h5wasm.File(file, 'w');
    const grow = (name: string, data: Float32Array | Int32Array | BigInt64Array, shape: number[], dtype: string) =>
      f.create_dataset({
        name,
        data,
        shape,
        dtype,
        maxshape: [null, ...shape.slice(1)],
        chunks: [1, ...shape.slice(1)],
      });
    grow('vis', Float32Array.from(rows.flatMap((r) => [...r.vis])), [2, 1, H, W], '<f');
    grow('image', Float32Array.from(rows.flatMap((r) => [...r.image])), [2, 3, H, W], '<f');
    grow('target', Int32Array.from(rows.map((r) => r.target)), [2], '<i');
    grow('index', BigInt64Array.of(0n, 1n), [2], '<q');
    (f.get('vis') as Dataset).resize([3, 1, H, W]);
    (f.get('image') as Dataset).resize([3, 3, H, W]);
    f.close();
    await rejectsFormat(() => readExplanations(file), /different lengths \(vis 3, image 3, target 2, index 2\)/);
    const w2 = await ExplanationWriter.open(file);
    assert.equal(w2.rows, 2);
    assert.match(w2.repaired ?? '', /trimmed to the 2 complete rows/);
    w2.append([row(2)]);
    w2.close();
    const r = await readExplanations(file);
    assertRows(file, r.readRows(0, 3), [0, 1, 2]);
    r.close();
    const g = new h5wasm.File(file, 'r');
    assert.deepEqual([...((g.get('rows') as Dataset).value as BigInt64Array)], [3n]);
    g.close();
  });

  test('/rows larger than the datasets, or not a count, is refused', async () => {
    const file = path.join(tmp, 'rows-too-big.hdf5');
    const w = await ExplanationWriter.create(file, { height: H, width: W });
    w.append([row(0)]);
    w.close();
    const f = new h5wasm.File(file, 'a');
    (f.get('rows') as Dataset).write_slice([[0, 1]], BigInt64Array.of(5n));
    f.close();
    const msg = /\/rows says 5 complete rows, but the datasets hold fewer \(vis 1, image 1, target 1, index 1\)/;
    await rejectsFormat(() => readExplanations(file), msg);
    await rejectsFormat(() => ExplanationWriter.open(file), msg);
    const g = new h5wasm.File(file, 'a');
    (g.get('rows') as Dataset).write_slice([[0, 1]], BigInt64Array.of(-1n));
    g.close();
    await rejectsFormat(() => readExplanations(file), /\/rows holds -1, not a row count/);
  });

  test('openOrRecover() rebuilds a file a killed flush left unreadable, keeping every row still readable', async () => {
    const layout = { height: H, width: W, attrs: { method: 'rollout' } };
    // Cut short mid-flush: nothing past the damage can be read, so the file is rebuilt empty.
    const file = path.join(tmp, 'killed.hdf5');
    const w = await ExplanationWriter.create(file, layout);
    w.append([row(0), row(1), row(2)]);
    w.close();
    fs.truncateSync(file, fs.statSync(file).size - 100);
    await rejectsFormat(() => ExplanationWriter.open(file), /truncated/);
    const w2 = await ExplanationWriter.openOrRecover(file, layout);
    assert.match(
      w2.repaired ?? '',
      /truncated.*; rebuilt with the 0 complete rows still readable, the others are recomputed$/,
    );
    assert.equal(w2.rows, 0);
    assert.equal(w2.attrs.method, 'rollout');
    w2.append([row(0)]);
    w2.close();
    assert.ok(!fs.existsSync(`${file}.broken`));
    // A recovery killed half-way: the set-aside original is still there and is recovered from again.
    const again = path.join(tmp, 'recovery-killed.hdf5');
    const orig = await ExplanationWriter.create(`${again}.broken`, layout);
    orig.append([row(5), row(3), row(4)]);
    orig.close();
    fs.writeFileSync(again, 'half-written replacement');
    const w3 = await ExplanationWriter.openOrRecover(again, layout);
    assert.match(w3.repaired ?? '', /^an earlier recovery was interrupted; rebuilt with the 3 complete rows/);
    assert.ok(w3.has(5) && w3.has(3) && w3.has(4));
    w3.close();
    const r = await readExplanations(again);
    assertRows(again, r.readRows(0, 3), [5, 3, 4]);
    r.close();
    assert.ok(!fs.existsSync(`${again}.broken`));
    // A readable file of the wrong layout is refused, not rebuilt.
    const readable = path.join(tmp, 'fixed-length.hdf5');
    const f = new h5wasm.File(readable, 'w');
    f.create_dataset({ name: 'vis', data: new Float32Array(2 * H * W), shape: [2, 1, H, W], dtype: '<f4' });
    f.create_dataset({ name: 'image', data: new Float32Array(6 * H * W), shape: [2, 3, H, W], dtype: '<f4' });
    f.create_dataset({ name: 'target', data: new Int32Array(2), shape: [2], dtype: '<i4' });
    f.close();
    await rejectsFormat(() => ExplanationWriter.openOrRecover(readable, layout), /cannot append/);
    assert.ok(fs.existsSync(readable) && !fs.existsSync(`${readable}.broken`));
  });

  test('other map sizes get the chunks h5py would choose', async () => {
    const file = path.join(tmp, 'small.hdf5');
    const w = await ExplanationWriter.create(file, { height: 32, width: 32 });
    w.append([row(0, 32, 32)]);
    w.close();
    const f = new h5wasm.File(file, 'r');
    assert.deepEqual((f.get('vis') as Dataset).metadata.chunks, [1, 1, 32, 32]);
    assert.deepEqual((f.get('image') as Dataset).metadata.chunks, [1, 2, 32, 32]);
    f.close();
  });
});

describe('merging shards', () => {
  const N = 7;
  test('3 shards with interleaved indices merge into the file one machine writes', async () => {
    const single = path.join(tmp, 'single.hdf5');
    const w = await ExplanationWriter.create(single, { height: H, width: W, attrs: ATTRS });
    for (let i = 0; i < N; i++) w.append([row(i)]);
    w.close();
    const shards: string[] = [];
    for (let s = 0; s < 3; s++) {
      const file = path.join(tmp, `shard-${s}.hdf5`);
      const sw = await ExplanationWriter.create(file, { height: H, width: W, attrs: ATTRS });
      const mine = [...Array(N).keys()].filter((i) => i % 3 === s).reverse(); // any order within a shard
      for (const i of mine) sw.append([row(i)]);
      sw.close();
      shards.push(file);
    }
    const merged = path.join(tmp, 'merged.hdf5');
    assert.deepEqual(await mergeExplanationFiles(merged, [shards[2]!, shards[0]!, shards[1]!], { batch: 3 }), {
      rows: N,
    });
    assert.ok(!fs.readdirSync(tmp).some((f) => f.includes('.tmp-')));
    const a = await readExplanations(single);
    const b = await readExplanations(merged);
    try {
      assert.equal(b.rows, a.rows);
      assert.deepEqual(b.attrs, a.attrs);
      assert.deepEqual(b.indices, a.indices);
      const ra = a.readRows(0, N);
      const rb = b.readRows(0, N);
      assert.equal(sha256(rb.vis), sha256(ra.vis));
      assert.equal(sha256(rb.image), sha256(ra.image));
      assert.deepEqual(rb.target, ra.target);
    } finally {
      a.close();
      b.close();
    }
    // same layout too
    const fa = new h5wasm.File(single, 'r');
    const fb = new h5wasm.File(merged, 'r');
    for (const name of ['vis', 'image', 'target', 'index']) {
      const [da, db] = [fa.get(name) as Dataset, fb.get(name) as Dataset];
      assert.deepEqual(db.metadata, da.metadata, name);
      assert.deepEqual(db.filters, da.filters, name);
    }
    assert.deepEqual(fb.keys(), fa.keys());
    fa.close();
    fb.close();

    // overlapping, missing, mismatched, unindexed
    await rejectsFormat(
      () => mergeExplanationFiles(merged, [shards[0]!, shards[1]!, shards[0]!]),
      /index \d is also in .*shard-0/,
    );
    await rejectsFormat(
      () => mergeExplanationFiles(merged, [shards[0]!, shards[2]!]),
      /2 data-set indices .* in none/,
      /\(1, 4\)/,
    );
    await rejectsFormat(() => mergeExplanationFiles(merged, shards, { rows: 9 }), /in none/, /7, 8/);
    const other = path.join(tmp, 'shard-other.hdf5');
    const ow = await ExplanationWriter.create(other, { height: H, width: W, attrs: { ...ATTRS, method: 'rollout' } });
    ow.append([row(1)]);
    ow.close();
    await rejectsFormat(
      () => mergeExplanationFiles(merged, [shards[0]!, other, shards[2]!]),
      /shard-other/,
      /method: "rollout" vs "transformer_attribution"/,
    );
    await rejectsFormat(() => mergeExplanationFiles(merged, [goldenFile('rollout')]), /no 'index' dataset/);
  });
});

describe('bad files', () => {
  test('missing, not HDF5, truncated', async () => {
    await rejectsFormat(() => readExplanations(path.join(tmp, 'nope.hdf5')), /nope\.hdf5: file not found/);
    await rejectsFormat(() => ExplanationWriter.open(path.join(tmp, 'nope.hdf5')), /file not found/);
    const text = path.join(tmp, 'text.hdf5');
    fs.writeFileSync(text, 'vis,image,target\n1,2,3\n');
    await rejectsFormat(() => readExplanations(text), /not an HDF5 file/, /text starting 'vis,image/);
    const cut = path.join(tmp, 'truncated.hdf5');
    const bytes = fs.readFileSync(goldenFile('rollout'));
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    await rejectsFormat(() => readExplanations(cut), /truncated/);
  });

  /** Writes an HDF5 file with the given datasets (shape, Float32/Int32 data). */
  async function writeRaw(name: string, sets: Record<string, [number[], 'f' | 'i']>): Promise<string> {
    await h5wasm.ready;
    const file = path.join(tmp, name);
    const f = new h5wasm.File(file, 'w');
    for (const [n, [shape, t]] of Object.entries(sets)) {
      const size = shape.reduce((a, b) => a * b, 1);
      f.create_dataset({ name: n, data: t === 'f' ? new Float32Array(size) : new Int32Array(size), shape });
    }
    f.close();
    return file;
  }

  test('a vis of another size, a file without target, wrong shapes, different lengths', async () => {
    const small = await writeRaw('small-vis.hdf5', {
      vis: [[2, 1, 112, 112], 'f'],
      image: [[2, 3, 224, 224], 'f'],
      target: [[2], 'i'],
    });
    await rejectsFormat(
      () => readExplanations(small),
      /small-vis\.hdf5/,
      /\/vis maps are 112×112 but \/image is 224×224/,
    );
    const noTarget = await writeRaw('no-target.hdf5', { vis: [[2, 1, 8, 8], 'f'], image: [[2, 3, 8, 8], 'f'] });
    await rejectsFormat(() => readExplanations(noTarget), /no 'target' dataset/, /the file holds: \/image, \/vis/);
    const flat = await writeRaw('flat-vis.hdf5', {
      vis: [[2, 8, 8], 'f'],
      image: [[2, 3, 8, 8], 'f'],
      target: [[2], 'i'],
    });
    await rejectsFormat(() => readExplanations(flat), /\/vis is float32 \(2, 8, 8\)/);
    const floatTarget = await writeRaw('float-target.hdf5', {
      vis: [[2, 1, 8, 8], 'f'],
      image: [[2, 3, 8, 8], 'f'],
      target: [[2], 'f'],
    });
    await rejectsFormat(() => readExplanations(floatTarget), /\/target is float32 \(2\)/);
    const uneven = await writeRaw('uneven.hdf5', {
      vis: [[3, 1, 8, 8], 'f'],
      image: [[2, 3, 8, 8], 'f'],
      target: [[2], 'i'],
    });
    await rejectsFormat(() => readExplanations(uneven), /different lengths \(vis 3, image 2, target 2\)/);
    const ok = await writeRaw('tiny.hdf5', {
      vis: [[2, 1, 8, 8], 'f'],
      image: [[2, 3, 8, 8], 'f'],
      target: [[2], 'i'],
    });
    await rejectsFormat(() => readExplanations(ok, { size: { height: 224, width: 224 } }), /are 8×8, expected 224×224/);
    // fixed-size datasets (no maxshape None) cannot be appended to
    await rejectsFormat(() => ExplanationWriter.open(ok), /cannot append: \/vis has maxshape \(2, 1, 8, 8\)/);
  });
});
