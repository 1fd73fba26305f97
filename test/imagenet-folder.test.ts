import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { comparePyStr, type ImageFolder, openImageFolder } from '../src/datasets/imagenet-folder.js';
import { FileFormatError } from '../src/formats/host-tensor.js';
import { goldenPath, readJson } from './helpers/golden.js';

const E2E = ['e2e', 'perturb_S1'];
const ROOT = goldenPath(...E2E, 'imagenet_val');

interface GoldenImage {
  index: number;
  file: string;
  label: number;
  wnid: string;
  resized_float32_sha256: string;
}
const GOLDEN = readJson<{ images: GoldenImage[] }>(...E2E, 'results.json').images;

/** The README's table: file under imagenet_val/, label. */
const README: [string, number][] = [
  ['val/n01440764/ILSVRC2012_val_00000161.JPEG', 0],
  ['val/n01440764/ILSVRC2012_val_00000224.JPEG', 0],
  ['val/n01443537/ILSVRC2012_val_00000018.JPEG', 1],
  ['val/n01443537/ILSVRC2012_val_00000031.JPEG', 1],
  ['val/n01443537/ILSVRC2012_val_00000398.JPEG', 1],
  ['val/n01484850/ILSVRC2012_val_00000007.JPEG', 2],
  ['val/n01484850/ILSVRC2012_val_00000019.JPEG', 2],
  ['val/n01491361/ILSVRC2012_val_00000028.JPEG', 3],
  ['val/n01491361/ILSVRC2012_val_00000030.JPEG', 3],
  ['val/n01494475/ILSVRC2012_val_00000009.JPEG', 4],
  ['val/n01494475/ILSVRC2012_val_00000021.JPEG', 4],
  ['val/n01496331/ILSVRC2012_val_00000042.JPEG', 5],
  ['val/n01496331/ILSVRC2012_val_00000067.JPEG', 5],
  ['val/n01498041/ILSVRC2012_val_00000008.JPEG', 6],
  ['val/n01498041/ILSVRC2012_val_00000023.JPEG', 6],
  ['val/n01498041/ILSVRC2012_val_00000054.JPEG', 6],
  ['val/n01514668/ILSVRC2012_val_00000001.JPEG', 7],
  ['val/n01514668/ILSVRC2012_val_00000012.JPEG', 7],
  ['val/n01514859/ILSVRC2012_val_00000025.JPEG', 8],
  ['val/n01514859/ILSVRC2012_val_00000175.JPEG', 8],
  ['val/n01518878/ILSVRC2012_val_00000166.JPEG', 9],
  ['val/n01518878/ILSVRC2012_val_00000190.JPEG', 9],
];
const WNIDS = [...new Set(README.map(([f]) => f.split('/')[1]!))];

const tmp = fs.mkdtempSync(path.join(tmpdir(), 'imagenet-folder-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sha256(a: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');
}

function relItems(f: ImageFolder, base: string): [string, number][] {
  return f.items.map((it) => [path.relative(base, it.file), it.label]);
}

async function rejectsFormat(p: Promise<unknown> | (() => unknown), ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(
    async () => (typeof p === 'function' ? p() : p),
    (e: unknown) => {
      assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${String(e)}`);
      for (const re of patterns) assert.match(e.message, re);
      return true;
    },
  );
}

describe('golden imagenet_val (ImageFolder over val/)', () => {
  test('the root with val/ gives the 22 images in the README order with its labels', () => {
    const f = openImageFolder(ROOT);
    assert.equal(f.layout, 'class-folders');
    assert.equal(f.root, `${ROOT}/val`);
    assert.equal(f.length, 22);
    assert.deepEqual(f.classes, WNIDS);
    assert.deepEqual(relItems(f, ROOT), README);
    assert.deepEqual(
      f.items.map((it) => it.wnid),
      README.map(([file]) => file.split('/')[1]),
    );
    // results.json lists the same order (the loader's own order)
    assert.deepEqual(
      GOLDEN.map((g) => [g.file, g.label]),
      README,
    );
  });

  test('the val/ folder itself gives the same list', () => {
    const f = openImageFolder(path.join(ROOT, 'val'));
    assert.deepEqual(relItems(f, ROOT), README);
    assert.deepEqual(relItems(openImageFolder(`${ROOT}/val/`), ROOT), README);
  });

  test('load(i) is the float32 image the official script stored (SHA-256 of resized_float32)', async () => {
    const f = openImageFolder(ROOT);
    for (let i = 0; i < f.length; i++) {
      const { image, label } = await f.load(i);
      assert.equal(image.length, 3 * 224 * 224);
      assert.equal(label, README[i]![1]);
      assert.equal(sha256(image), GOLDEN[i]!.resized_float32_sha256, `image ${i}`);
    }
    await assert.rejects(() => f.load(22), RangeError);
  });

  test('the size option', async () => {
    const f = openImageFolder(ROOT, { size: { height: 32, width: 48 } });
    const { image } = await f.load(0);
    assert.equal(image.length, 3 * 32 * 48);
    assert.ok(image.every((v) => v >= 0 && v <= 1));
  });
});

describe('Python ordering and the ImageFolder walk', () => {
  test('comparePyStr sorts as Python sorted() on str', () => {
    const s = ['b', 'B', 'a', 'Z', 'é', '\u{1F600}', '\uFFFD', 'a_b', 'a.b', 'a', 'ab', 'A1', 'a10', 'a9'];
    // printed by python3: sorted(s)
    const py = ['A1', 'B', 'Z', 'a', 'a', 'a.b', 'a10', 'a9', 'a_b', 'ab', 'b', 'é', '\uFFFD', '\u{1F600}'];
    assert.deepEqual([...s].sort(comparePyStr), py);
  });

  test('class folders are walked recursively, files filtered by extension (any case), sorted by path', () => {
    const dir = path.join(tmp, 'walk');
    const jpeg = path.join(ROOT, README[0]![0]);
    for (const rel of [
      'n00000001/b.JPG',
      'n00000001/a.png',
      'n00000001/Z.jpeg',
      'n00000001/sub/a.jpeg',
      'n00000002/x.webp',
    ]) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.copyFileSync(jpeg, path.join(dir, rel));
    }
    fs.writeFileSync(path.join(dir, 'n00000001', 'notes.txt'), 'x');
    fs.mkdirSync(path.join(dir, 'n00000003')); // empty class: keeps its index
    fs.writeFileSync(path.join(dir, 'stray.jpeg'), 'x'); // files beside the class folders are ignored
    const f = openImageFolder(dir);
    assert.deepEqual(f.classes, ['n00000001', 'n00000002', 'n00000003']);
    assert.deepEqual(relItems(f, dir), [
      ['n00000001/Z.jpeg', 0],
      ['n00000001/a.png', 0],
      ['n00000001/b.JPG', 0],
      ['n00000001/sub/a.jpeg', 0],
      ['n00000002/x.webp', 1],
    ]);
  });

  test('a sub-folder that is not a WordNet id is an error', () => {
    const dir = path.join(tmp, 'nonwnid');
    fs.mkdirSync(path.join(dir, 'n01440764'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'extra'));
    fs.copyFileSync(path.join(ROOT, README[0]![0]), path.join(dir, 'n01440764', 'a.JPEG'));
    return rejectsFormat(() => openImageFolder(dir), /extra/, /WordNet/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Flat folders.

/** The six golden images used for the flat folders: ILSVRC2012_val_0000000k.JPEG ← golden image SOURCES[k − 1]. */
const SOURCES = [20, 2, 9, 0, 13, 3];

function flatName(k: number): string {
  return `ILSVRC2012_val_${String(k + 1).padStart(8, '0')}.JPEG`;
}

function makeFlat(name: string, which = SOURCES.map((_, k) => k)): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const k of which) fs.copyFileSync(path.join(ROOT, GOLDEN[SOURCES[k]!]!.file), path.join(dir, flatName(k)));
  return dir;
}

function locCsv(which = SOURCES.map((_, k) => k)): string {
  const lines = ['ImageId,PredictionString'];
  for (const k of which) {
    const w = GOLDEN[SOURCES[k]!]!.wnid;
    lines.push(`${flatName(k).replace('.JPEG', '')},${w} 10 20 100 200 ${w} 5 5 50 50 `);
  }
  return `${lines.join('\n')}\n`;
}

/** The expected (file, label) list: by label, then by file name, labels = sorted-wnid index over `classes`. */
function expected(classes: string[]): [string, number][] {
  return SOURCES.map((g, k): [string, number] => [flatName(k), classes.indexOf(GOLDEN[g]!.wnid)]).sort(
    (a, b) => a[1] - b[1] || comparePyStr(a[0], b[0]),
  );
}

async function checkPixels(f: ImageFolder): Promise<void> {
  for (let i = 0; i < f.length; i++) {
    const k = Number(/(\d{8})/.exec(path.basename(f.items[i]!.file))![1]) - 1;
    const { image } = await f.load(i);
    assert.equal(sha256(image), GOLDEN[SOURCES[k]!]!.resized_float32_sha256);
  }
}

// ---- a minimal Level-5 MAT writer, for a devkit-like meta.mat -------------------------------------------------

function matEl(type: number, data: Uint8Array): Uint8Array {
  const pad = (8 - (data.length % 8)) % 8;
  const out = new Uint8Array(8 + data.length + pad);
  const v = new DataView(out.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, data.length, true);
  out.set(data, 8);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function matMatrix(cls: number, dims: number[], name: string, body: Uint8Array[]): Uint8Array {
  return matEl(
    14,
    concat([
      matEl(6, new Uint8Array(new Uint32Array([cls, 0]).buffer)),
      matEl(5, new Uint8Array(new Int32Array(dims).buffer)),
      matEl(1, new TextEncoder().encode(name)),
      ...body,
    ]),
  );
}

const matDouble = (x: number) => matMatrix(6, [1, 1], '', [matEl(9, new Uint8Array(new Float64Array([x]).buffer))]);
const matChar = (s: string) =>
  matMatrix(4, [1, s.length], '', [matEl(4, new Uint8Array(Uint16Array.from(s, (c) => c.charCodeAt(0)).buffer))]);

/** meta.mat with `synsets` (ILSVRC2012_ID, WNID, num_children) like the devkit's. */
function writeMetaMat(file: string, synsets: [number, string, number][]): void {
  const fields = ['ILSVRC2012_ID', 'WNID', 'num_children'];
  const names = new Uint8Array(32 * fields.length);
  fields.forEach((f, k) => {
    names.set(new TextEncoder().encode(f), 32 * k);
  });
  const elems = synsets.flatMap(([id, w, c]) => [matDouble(id), matChar(w), matDouble(c)]);
  const struct = matMatrix(2, [synsets.length, 1], 'synsets', [
    matEl(5, new Uint8Array(new Int32Array([32]).buffer)),
    matEl(1, names),
    ...elems,
  ]);
  const header = new Uint8Array(128).fill(0x20);
  header.set(new TextEncoder().encode('MATLAB 5.0 MAT-file, test meta.mat'), 0);
  header.set([0, 0, 0, 0, 0, 0, 0, 0], 116);
  header.set([0x00, 0x01, 0x49, 0x4d], 124);
  fs.writeFileSync(file, concat([header, struct]));
}

/** Devkit ids: the reverse of the sorted order (so a sorted-order reading would be wrong), plus a non-leaf synset. */
const DEVKIT_ID = new Map(WNIDS.map((w, k) => [w, WNIDS.length - k] as const));

function groundTruth(which = SOURCES.map((_, k) => k)): string {
  const n = Math.max(...which) + 1;
  const lines: string[] = [];
  for (let k = 0; k < n; k++) lines.push(String(DEVKIT_ID.get(GOLDEN[SOURCES[k]!]!.wnid)));
  return `${lines.join('\n')}\n`;
}

function writeDevkit(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const synsets: [number, string, number][] = WNIDS.map((w) => [DEVKIT_ID.get(w)!, w, 0]);
  synsets.push([1001, 'n00001740', 3]); // a non-leaf synset: ignored
  writeMetaMat(path.join(dir, 'meta.mat'), synsets.reverse());
  fs.writeFileSync(path.join(dir, 'ILSVRC2012_validation_ground_truth.txt'), groundTruth());
}

describe('flat folder with LOC_val_solution.csv', () => {
  test('classes = sorted wnids of the csv; order by (label, name); pixels as the golden', async () => {
    const dir = makeFlat('flat-csv');
    fs.writeFileSync(path.join(dir, 'LOC_val_solution.csv'), locCsv());
    const f = openImageFolder(dir);
    assert.equal(f.layout, 'flat');
    const classes = [...new Set(SOURCES.map((g) => GOLDEN[g]!.wnid))].sort();
    assert.deepEqual(f.classes, classes);
    assert.deepEqual(relItems(f, dir), expected(classes));
    assert.match(f.labelSource, /sorted set of the 5 WordNet ids/);
    await checkPixels(f);
  });

  test('with LOC_synset_mapping.txt: index = line number (the standard sorted index)', () => {
    const dir = makeFlat('flat-csv-map');
    fs.writeFileSync(path.join(dir, 'LOC_val_solution.csv'), locCsv());
    fs.writeFileSync(path.join(dir, 'LOC_synset_mapping.txt'), WNIDS.map((w) => `${w} name of ${w}, other`).join('\n'));
    const f = openImageFolder(dir);
    assert.deepEqual(f.classes, WNIDS);
    assert.deepEqual(relItems(f, dir), expected(WNIDS));
    // the labels equal the golden folder labels of the same images
    for (const it of f.items) {
      const k = Number(/(\d{8})/.exec(it.file)![1]) - 1;
      assert.equal(it.label, GOLDEN[SOURCES[k]!]!.label);
    }
  });

  test('the labels option, and a label file in the ImageNet root beside a flat val/', () => {
    const root = path.join(tmp, 'root-flat');
    const dir = makeFlat(path.join('root-flat', 'val'));
    const csv = path.join(tmp, 'elsewhere.csv');
    fs.writeFileSync(csv, locCsv());
    assert.deepEqual(
      relItems(openImageFolder(dir, { labels: csv }), dir),
      expected([...new Set(SOURCES.map((g) => GOLDEN[g]!.wnid))].sort()),
    );
    fs.writeFileSync(path.join(root, 'LOC_val_solution.csv'), locCsv());
    const f = openImageFolder(root);
    assert.equal(f.root, `${root}/val`);
    assert.equal(f.length, SOURCES.length);
  });
});

describe('flat folder with the devkit ground truth', () => {
  test('ILSVRC2012_IDs are translated through meta.mat into sorted-wnid indices', async () => {
    const dir = makeFlat('flat-devkit');
    writeDevkit(dir);
    const f = openImageFolder(dir);
    assert.deepEqual(f.classes, WNIDS);
    assert.deepEqual(relItems(f, dir), expected(WNIDS));
    assert.match(f.labelSource, /meta\.mat/);
    await checkPixels(f);
  });

  test('found in ILSVRC2012_devkit_t12/data of the ImageNet root; meta.mat and mapping given explicitly', () => {
    const root = path.join(tmp, 'root-devkit');
    const dir = makeFlat(path.join('root-devkit', 'val'));
    const data = path.join(root, 'ILSVRC2012_devkit_t12', 'data');
    writeDevkit(data);
    assert.deepEqual(relItems(openImageFolder(root), dir), expected(WNIDS));
    const f = openImageFolder(dir, {
      labels: path.join(data, 'ILSVRC2012_validation_ground_truth.txt'),
      meta: path.join(data, 'meta.mat'),
    });
    assert.deepEqual(relItems(f, dir), expected(WNIDS));
  });

  test('ground truth + LOC_synset_mapping.txt only: a clear error asking for meta.mat', async () => {
    const dir = makeFlat('flat-gt-map');
    fs.writeFileSync(path.join(dir, 'ILSVRC2012_validation_ground_truth.txt'), groundTruth());
    fs.writeFileSync(path.join(dir, 'LOC_synset_mapping.txt'), WNIDS.map((w) => `${w} x`).join('\n'));
    await rejectsFormat(
      () => openImageFolder(dir),
      /ILSVRC2012_validation_ground_truth\.txt/,
      /LOC_synset_mapping\.txt was found/,
      /meta\.mat/,
    );
    await rejectsFormat(() => openImageFolder(dir, { meta: path.join(dir, 'LOC_synset_mapping.txt') }), /meta\.mat/);
  });
});

describe('bad folders', () => {
  test('missing folder, empty folder, folder without images', async () => {
    await rejectsFormat(() => openImageFolder(path.join(tmp, 'nope')), /nope/, /not found/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await rejectsFormat(
      () => openImageFolder(empty),
      /empty/,
      /no images found/,
      /WordNet id/,
      /LOC_val_solution\.csv/,
    );
    const other = path.join(tmp, 'other');
    fs.mkdirSync(path.join(other, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(other, 'readme.txt'), 'x');
    await rejectsFormat(() => openImageFolder(other), /no images found/, /readme\.txt/);
    const noLabels = makeFlat('flat-nolabels');
    await rejectsFormat(() => openImageFolder(noLabels), /no label file/);
  });

  test('a label file missing an image names it', async () => {
    const dir = makeFlat('flat-missing-label');
    fs.writeFileSync(path.join(dir, 'LOC_val_solution.csv'), locCsv([0, 1, 2, 4, 5]));
    await rejectsFormat(
      () => openImageFolder(dir),
      /LOC_val_solution\.csv/,
      /1 of 6 images have no label/,
      /ILSVRC2012_val_00000004\.JPEG/,
    );
  });

  test('labels for missing images name a few; partial accepts them', () => {
    const dir = makeFlat('flat-missing-image', [0, 1, 3]);
    fs.writeFileSync(path.join(dir, 'LOC_val_solution.csv'), locCsv());
    assert.throws(
      () => openImageFolder(dir),
      (e: unknown) =>
        e instanceof FileFormatError &&
        /3 image\(s\) that are not there/.test(e.message) &&
        /ILSVRC2012_val_00000003, ILSVRC2012_val_00000005/.test(e.message),
    );
    assert.equal(openImageFolder(dir, { partial: true }).length, 3);
    const gt = makeFlat('flat-gt-missing-image', [0, 2]);
    writeDevkit(gt);
    assert.throws(() => openImageFolder(gt), /not there \(ILSVRC2012_val_00000002, ILSVRC2012_val_00000004/);
  });

  test('a malformed label file', () => {
    const dir = makeFlat('flat-bad-csv');
    fs.writeFileSync(
      path.join(dir, 'LOC_val_solution.csv'),
      'ImageId,PredictionString\nILSVRC2012_val_00000001,tench 1 2 3 4\n',
    );
    assert.throws(() => openImageFolder(dir), /line 2: expected 'ImageId,wnid/);
  });

  test('a garbage .JPEG fails at load time with a FileFormatError naming the file', async () => {
    const dir = makeFlat('flat-garbage');
    fs.writeFileSync(path.join(dir, flatName(1)), 'this is not a JPEG');
    fs.writeFileSync(path.join(dir, 'LOC_val_solution.csv'), locCsv());
    const f = openImageFolder(dir);
    const i = f.items.findIndex((it) => it.file.endsWith(flatName(1)));
    await rejectsFormat(f.load(i), new RegExp(flatName(1).replace('.', '\\.')), /not a readable image/);
    await f.load(i === 0 ? 1 : 0); // the others still load
  });
});
