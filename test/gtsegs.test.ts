import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs, { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import h5wasm, { Reference } from 'h5wasm/node';
import type { RgbImage } from '../src/data/image.js';
import { type GtsegsItem, openGtsegs, preprocessSegItem, type SegMask } from '../src/datasets/gtsegs.js';
import { type GtsegsWriteItem, writeGtsegsMat } from '../src/datasets/gtsegs-writer.js';
import { FileFormatError } from '../src/formats/host-tensor.js';
import { goldenPath, readGoldenTensors, readJson } from './helpers/golden.js';

const SEG = ['e2e', 'seg_S1'];
const GOLDEN_MAT = goldenPath(...SEG, 'gtsegs_ijcv_e2e_S1.mat');
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures');
const SIZE = { height: 224, width: 224 };

const tmp = mkdtempSync(path.join(tmpdir(), 'gtsegs-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The README table of golden/e2e/seg_S1: id, H, W, fg pixels after NEAREST 224×224. */
const README_TABLE: [string, number, number, number][] = [
  ['n01440764_1005', 200, 300, 9941],
  ['n01443537_1112', 224, 224, 10345],
  ['n01484850_1207', 375, 500, 17310],
  ['n01491361_1305', 260, 150, 11938],
  ['n01494475_1420', 333, 250, 10795],
  ['n01496331_1506', 181, 419, 11385],
];

interface GoldenImage {
  index: number;
  id: string;
  height: number;
  width: number;
  mask_foreground_pixels: number;
  label224_foreground_pixels: number;
  img_sha256: string;
  mask_sha256: string;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function sum(a: Uint8Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const k = a.findIndex((v, i) => v !== b[i]);
  assert.equal(k, -1, `${what}: first difference at ${k}: ${a[k]} vs ${b[k]}`);
}

/**
 * Runs `fn` with everything written to stderr (process.stderr and raw fd 2, which h5wasm's HDF5 error printing
 * uses) captured, and returns it with the result. Any HDF5-DIAG text here escaped the reader's suppression.
 */
async function captureStderr<T>(
  fn: () => Promise<T>,
): Promise<{ result: T | undefined; error: unknown; stderr: string }> {
  const mod = fs as unknown as { writeSync: typeof fs.writeSync };
  const origWriteSync = mod.writeSync;
  const origWrite = process.stderr.write;
  let stderr = '';
  mod.writeSync = ((fd: number, buffer: unknown, ...rest: unknown[]) => {
    if (fd === 2) {
      stderr += typeof buffer === 'string' ? buffer : Buffer.from(buffer as Uint8Array).toString();
      return typeof buffer === 'string'
        ? buffer.length
        : ((rest[1] as number | undefined) ?? (buffer as Uint8Array).length);
    }
    return (origWriteSync as (...a: unknown[]) => number)(fd, buffer, ...rest);
  }) as typeof fs.writeSync;
  process.stderr.write = ((chunk: unknown) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), error: undefined, stderr };
  } catch (error) {
    return { result: undefined, error, stderr };
  } finally {
    mod.writeSync = origWriteSync;
    process.stderr.write = origWrite;
  }
}

/** Opens `file` and reads every item; asserts a FileFormatError naming the file, matching `problem`, no stderr. */
async function expectBad(file: string, problem: RegExp): Promise<string> {
  const { error, stderr } = await captureStderr(async () => {
    const ds = await openGtsegs(file);
    try {
      for (let i = 0; i < ds.length; i++) ds.get(i);
    } finally {
      ds.close();
    }
  });
  assert.ok(error instanceof FileFormatError, `expected a FileFormatError for ${file}, got ${String(error)}`);
  assert.equal(error.file, file);
  assert.ok(error.message.startsWith(`${file}: `), error.message);
  assert.match(error.message, problem);
  assert.doesNotMatch(stderr, /HDF5-DIAG/, 'HDF5 error output reached stderr');
  assert.equal(stderr, '', 'nothing on stderr');
  return error.message;
}

/** Deterministic pseudo-random bytes (LCG), so failures are reproducible. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function randomItem(height: number, width: number, seed: number, id?: string): GtsegsWriteItem {
  const image: RgbImage = { width, height, data: randomBytes(height * width * 3, seed) };
  const mask: SegMask = { width, height, data: randomBytes(height * width, seed + 1).map((v) => v & 1) };
  return id === undefined ? { image, mask } : { image, mask, id };
}

function assertSameItems(got: GtsegsItem[], want: GtsegsWriteItem[], label: string): void {
  assert.equal(got.length, want.length, `${label}: count`);
  got.forEach((g, i) => {
    const w = want[i]!;
    assert.equal(g.image.width, w.image.width, `${label} ${i}: width`);
    assert.equal(g.image.height, w.image.height, `${label} ${i}: height`);
    sameBytes(g.image.data, w.image.data, `${label} ${i}: pixels`);
    assert.equal(g.mask.width, w.mask.width);
    assert.equal(g.mask.height, w.mask.height);
    sameBytes(g.mask.data, w.mask.data, `${label} ${i}: mask`);
    assert.equal(g.id, w.id, `${label} ${i}: id`);
  });
}

async function readAll(file: string, warn?: (m: string) => void) {
  const ds = await openGtsegs(file, warn ? { warn } : {});
  try {
    return { format: ds.format, items: Array.from({ length: ds.length }, (_, i) => ds.get(i)) };
  } finally {
    ds.close();
  }
}

describe('gtsegs: the golden MATLAB v7.3 file', () => {
  const images = readJson<{ images: GoldenImage[] }>(...SEG, 'results.json').images;

  test('sizes, ids and masks match the README table and results.json', async () => {
    const ds = await openGtsegs(GOLDEN_MAT);
    try {
      assert.equal(ds.format, 'mat-v7.3');
      assert.equal(ds.length, 6);
      assert.equal(images.length, 6);
      for (let i = 0; i < ds.length; i++) {
        const item = ds.get(i);
        const [id, h, w] = README_TABLE[i]!;
        const g = images[i]!;
        assert.equal(item.id, id);
        assert.equal(g.id, id);
        assert.deepEqual([item.image.height, item.image.width], [h, w], `image ${i} H×W`);
        assert.deepEqual([g.height, g.width], [h, w]);
        assert.deepEqual([item.mask.height, item.mask.width], [h, w], `mask ${i} H×W`);
        assert.equal(sum(item.mask.data), g.mask_foreground_pixels, `mask ${i} foreground pixels`);
        assert.ok(
          item.mask.data.every((v) => v <= 1),
          'mask is 0/1',
        );
        // The generator's hashes of the H×W×3 image and the H×W mask (numpy C order).
        assert.equal(sha256(item.image.data), g.img_sha256, `image ${i} sha256`);
        assert.equal(sha256(item.mask.data), g.mask_sha256, `mask ${i} sha256`);
      }
    } finally {
      ds.close();
    }
  });

  test('preprocessSegItem reproduces the script’s resized image and label byte for byte', async () => {
    const ref = readGoldenTensors(...SEG, 'intermediates.safetensors');
    const ds = await openGtsegs(GOLDEN_MAT);
    try {
      for (let i = 0; i < ds.length; i++) {
        const { input, label, picture } = preprocessSegItem(ds.get(i), SIZE, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
        const resized = ref.get(`img${i}.resized_uint8`)!;
        const refLabel = ref.get(`img${i}.label`)!;
        assert.deepEqual(resized.shape, [224, 224, 3]);
        assert.deepEqual(refLabel.shape, [224, 224]);
        assert.deepEqual([picture.height, picture.width], [224, 224]);
        sameBytes(picture.data, resized.data as Uint8Array, `img${i}.resized_uint8`);
        sameBytes(label, refLabel.data as Uint8Array, `img${i}.label`);
        assert.equal(sum(label), README_TABLE[i]![3], `img${i} label foreground pixels`);
        assert.equal(sum(label), images[i]!.label224_foreground_pixels);
        // Model input = Normalize(0.5, 0.5)(ToTensor(resized)), CHW.
        assert.equal(input.length, 3 * 224 * 224);
        for (const p of [0, 777, 224 * 224 - 1]) {
          for (let c = 0; c < 3; c++) {
            const v = (resized.data as Uint8Array)[p * 3 + c]!;
            assert.equal(input[c * 224 * 224 + p], Math.fround(Math.fround(v / 255) - 0.5) / 0.5);
          }
        }
      }
    } finally {
      ds.close();
    }
  });
});

describe('gtsegs: writer round trip', () => {
  const items = [
    randomItem(17, 23, 1, 'n00000001_1'),
    randomItem(40, 9, 2, 'n00000002_22'),
    randomItem(64, 130, 3, 'x'),
  ];

  test('MATLAB v7.3 (512-byte user block) reads back identically', async () => {
    const file = path.join(tmp, 'roundtrip.mat');
    await writeGtsegsMat(file, items);
    const bytes = readFileSync(file);
    const header = new TextDecoder('latin1').decode(bytes.subarray(0, 116));
    assert.match(
      header,
      /^MATLAB 7\.3 MAT-file, Platform: \S+, Created on: \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} HDF5 schema 1\.00 \. +$/,
    );
    assert.deepEqual([...bytes.subarray(116, 128)], [0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0x49, 0x4d]);
    assert.deepEqual([...bytes.subarray(512, 520)], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
    const { format, items: got } = await readAll(file);
    assert.equal(format, 'mat-v7.3');
    assertSameItems(got, items, 'user block');
  });

  test('plain HDF5 (no user block) reads back identically', async () => {
    const file = path.join(tmp, 'roundtrip.h5');
    await writeGtsegsMat(file, items, { userBlock: false });
    assert.deepEqual([...readFileSync(file).subarray(0, 8)], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
    const { format, items: got } = await readAll(file);
    assert.equal(format, 'hdf5');
    assertSameItems(got, items, 'plain');
  });

  test('the written layout is the one of gtsegs_ijcv.mat', async () => {
    const file = path.join(tmp, 'layout.mat');
    await writeGtsegsMat(file, items);
    await h5wasm.ready;
    const f = new h5wasm.File(file, 'r');
    try {
      const value = f.get('value') as InstanceType<typeof h5wasm.Group>;
      assert.equal(value.attrs.MATLAB_class?.value, 'struct');
      assert.deepEqual(value.keys().sort(), ['gt', 'id', 'img', 'target']);
      for (const k of ['gt', 'id', 'img', 'target']) {
        const ds = f.get(`value/${k}`) as InstanceType<typeof h5wasm.Dataset>;
        assert.deepEqual(ds.shape, [3, 1]);
        assert.equal(ds.dtype, 'Reference');
        assert.equal(ds.attrs.MATLAB_class?.value, 'cell');
      }
      const imgRefs = (f.get('value/img') as InstanceType<typeof h5wasm.Dataset>).value as Reference[];
      const d = f.dereference(imgRefs[0]!) as unknown as InstanceType<typeof h5wasm.Dataset>;
      assert.deepEqual(d.shape, [3, 23, 17]);
      assert.equal(d.dtype, '<B');
      assert.equal(d.attrs.MATLAB_class?.value, 'uint8');
      assert.deepEqual(
        d.filters.map((x) => x.name),
        ['deflate'],
      );
      const refs = (f.get('value/gt') as InstanceType<typeof h5wasm.Dataset>).value as Reference[];
      const cell = f.dereference(refs[0]!) as unknown as InstanceType<typeof h5wasm.Dataset>;
      assert.deepEqual(cell.shape, [1, 1]);
      assert.equal(cell.attrs.MATLAB_class?.value, 'cell');
      const mask = f.dereference((cell.value as Reference[])[0]!) as unknown as InstanceType<typeof h5wasm.Dataset>;
      assert.deepEqual(mask.shape, [23, 17]);
      assert.equal(mask.attrs.MATLAB_class?.value, 'uint8');
    } finally {
      f.close();
    }
  });

  test('items without ids: no /value/id, id undefined', async () => {
    const noIds = items.map(({ image, mask }) => ({ image, mask }));
    const file = path.join(tmp, 'noids.mat');
    await writeGtsegsMat(file, noIds);
    const { items: got } = await readAll(file);
    assertSameItems(got, noIds, 'no ids');
  });

  test('0/255 masks are mapped to 0/1 and reported once', async () => {
    const m255 = items.map(({ image, mask }) => ({ image, mask: { ...mask, data: mask.data.map((v) => v * 255) } }));
    const file = path.join(tmp, 'mask255.mat');
    await writeGtsegsMat(file, m255);
    const warnings: string[] = [];
    const { items: got } = await readAll(file, (m) => warnings.push(m));
    assertSameItems(
      got,
      items.map(({ image, mask }) => ({ image, mask })),
      '255',
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /mask 0 holds values other than 0\/1 \(e\.g\. 0, 255\)/);
    assert.ok(warnings[0]!.includes(file));
  });
});

describe('gtsegs: Level-5 MAT-files (scipy.io.savemat fixtures)', () => {
  // Formulas of test/fixtures/make-gtsegs-level5.py.
  const SIZES: [number, number][] = [
    [5, 7],
    [6, 4],
    [4, 9],
  ];
  const IDS = ['n01440764_1', 'n2', 'x_3'];
  const expected = (i: number, h: number, w: number): GtsegsWriteItem => {
    const img = new Uint8Array(h * w * 3);
    const mask = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) img[(y * w + x) * 3 + c] = (37 * y + 11 * x + 101 * c + 53 * i) % 256;
        mask[y * w + x] = (3 * x + 5 * y + i) % 7 < 3 ? 1 : 0;
      }
    }
    return { image: { width: w, height: h, data: img }, mask: { width: w, height: h, data: mask } };
  };

  for (const name of ['gtsegs-level5.mat', 'gtsegs-level5-z.mat']) {
    test(`${name} reads to the expected pixels, masks and ids`, async () => {
      const warnings: string[] = [];
      const { format, items } = await readAll(path.join(FIXTURES, name), (m) => warnings.push(m));
      assert.equal(format, 'mat-level5');
      assertSameItems(
        items,
        SIZES.map(([h, w], i) => ({ ...expected(i, h, w), id: IDS[i]! })),
        name,
      );
      assert.deepEqual(warnings, []);
    });
  }

  test('a 0/255 mask is mapped to 0/1 with one warning', async () => {
    const warnings: string[] = [];
    const { items } = await readAll(path.join(FIXTURES, 'gtsegs-level5-255.mat'), (m) => warnings.push(m));
    assertSameItems(items, [expected(0, 3, 4)], '255');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /values other than 0\/1/);
  });

  test('preprocessSegItem works on Level-5 items', async () => {
    const { items } = await readAll(path.join(FIXTURES, 'gtsegs-level5-z.mat'));
    const { input, label, picture } = preprocessSegItem(
      items[2]!,
      { height: 8, width: 18 },
      [0.5, 0.5, 0.5],
      [0.5, 0.5, 0.5],
    );
    assert.equal(input.length, 3 * 8 * 18);
    assert.deepEqual([picture.height, picture.width], [8, 18]);
    // NEAREST 4×9 → 8×18 doubles every row and column.
    const m = items[2]!.mask.data;
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 18; x++) assert.equal(label[y * 18 + x], m[(y >> 1) * 9 + (x >> 1)]);
  });
});

describe('gtsegs: bad inputs give a FileFormatError naming the file and the problem', () => {
  test('missing file', async () => {
    await expectBad(path.join(tmp, 'does-not-exist.mat'), /file not found/);
  });

  test('truncated copy of the golden file (first 30%)', async () => {
    const bytes = readFileSync(GOLDEN_MAT);
    const file = path.join(tmp, 'truncated.mat');
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * 0.3)));
    await expectBad(file, /truncated: the HDF5 superblock records 520892 bytes, but the file has only \d+/);
  });

  test('truncated Level-5 file', async () => {
    const bytes = readFileSync(path.join(FIXTURES, 'gtsegs-level5.mat'));
    const file = path.join(tmp, 'truncated5.mat');
    writeFileSync(file, bytes.subarray(0, 900));
    await expectBad(file, /Level-5 MAT-file: truncated/);
  });

  test('plain HDF5 without /value lists the top-level names', async () => {
    await h5wasm.ready;
    const file = path.join(tmp, 'novalue.h5');
    const f = new h5wasm.File(file, 'w');
    f.create_group('stuff');
    f.create_dataset({ name: 'images', data: new Uint8Array([1, 2, 3]), shape: [3], dtype: '<B' });
    f.close();
    await expectBad(file, /HDF5 file without \/value: .*top-level names found: \/images, \/stuff/);
  });

  test('/value/img and /value/gt of different lengths', async () => {
    const file = path.join(tmp, 'lengths.h5');
    const f = new h5wasm.File(file, 'w');
    const a = f.create_dataset({ name: 'a', data: new Uint8Array([0]), shape: [1, 1], dtype: '<B' });
    const r = a.create_reference();
    const v = f.create_group('value');
    v.create_dataset({ name: 'img', data: [r, r], shape: [2, 1], dtype: 'Reference' });
    v.create_dataset({ name: 'gt', data: [r], shape: [1, 1], dtype: 'Reference' });
    f.close();
    await expectBad(file, /\/value\/img has 2 entries but \/value\/gt has 1/);
  });

  test('dangling reference', async () => {
    const file = path.join(tmp, 'dangling.h5');
    const f = new h5wasm.File(file, 'w');
    const v = f.create_group('value');
    const zero = new Reference(new Uint8Array(8));
    v.create_dataset({ name: 'img', data: [zero], shape: [1, 1], dtype: 'Reference' });
    v.create_dataset({ name: 'gt', data: [zero], shape: [1, 1], dtype: 'Reference' });
    f.close();
    await expectBad(file, /image 0 \(\/value\/img\[0\]\): dangling object reference/);
  });

  test('an image that is not uint8 (3, W, H)', async () => {
    const file = path.join(tmp, 'float-image.h5');
    const f = new h5wasm.File(file, 'w');
    const d = f.create_dataset({ name: 'im', data: new Float64Array(24), shape: [3, 4, 2], dtype: '<d' });
    const r = d.create_reference();
    const v = f.create_group('value');
    v.create_dataset({ name: 'img', data: [r], shape: [1, 1], dtype: 'Reference' });
    v.create_dataset({ name: 'gt', data: [r], shape: [1, 1], dtype: 'Reference' });
    f.close();
    await expectBad(file, /image 0 .*expected uint8 data of shape \(3, W, H\).*found float64 of shape \(3, 4, 2\)/);
  });

  test('a mask whose size differs from its image', async () => {
    const file = path.join(tmp, 'wrong-mask.mat');
    const good = randomItem(10, 12, 7);
    const bad = randomItem(20, 30, 8);
    await writeGtsegsMat(file, [
      good,
      { image: bad.image, mask: { width: 29, height: 21, data: new Uint8Array(29 * 21) } },
    ]);
    await expectBad(file, /mask 1 is 21×29 \(H×W\) but image 1 is 20×30/);
  });

  test('a file that is not a MAT-file', async () => {
    const file = path.join(tmp, 'notes.txt');
    writeFileSync(file, 'just some text, not a MAT-file at all\n'.repeat(40));
    await expectBad(
      file,
      /not a MAT-file: expected a MATLAB v7\.3 \(HDF5\) or Level-5 MAT-file, found text starting 'just some text/,
    );
  });

  test('an empty file', async () => {
    const file = path.join(tmp, 'empty.mat');
    writeFileSync(file, '');
    await expectBad(file, /empty file/);
  });
});
