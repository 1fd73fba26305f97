import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  decodeImage,
  decodeImageBuffer,
  normalizeCHW,
  normalizeCHWF64,
  type RgbImage,
  toModelInput,
  toUnitCHW,
} from '../src/data/image.js';
import { resizeBilinear, resizeNearest } from '../src/data/pillow-resize.js';
import { FileFormatError } from '../src/formats/host-tensor.js';
import { jet, overlayHeatmap, writePanelsPng } from '../src/reports/overlay.js';
import { goldenPath, readJson } from './helpers/golden.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const IMAGES = goldenPath('e2e', 'perturb_S1', 'imagenet_val');

function sha256(data: ArrayBufferView): string {
  return createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');
}

/** The 32-bit LCG of test/fixtures/make-pillow-fixtures.py: top byte of each state. */
function lcgBytes(seed: number, n: number): Uint8Array {
  let s = seed >>> 0;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** The smooth pattern of make-pillow-fixtures.py. */
function smoothBytes(w: number, h: number, c: number): Uint8Array {
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++)
        out[(y * w + x) * c + k] = (x * (3 + k) + y * (5 + 2 * k) + Math.floor((x * y) / 7)) % 256;
    }
  }
  return out;
}

interface ResizeCase {
  w: number;
  h: number;
  c: number;
  ow: number;
  oh: number;
  pattern: 'noise' | 'smooth' | 'white';
  seed: number;
  bilinear: string;
  nearest: string;
}
const pillowFixture = JSON.parse(readFileSync(join(FIXTURES, 'pillow-resize.json'), 'utf8')) as {
  pillow: string;
  decode: Record<string, string>;
  cases: ResizeCase[];
};

function caseInput(k: ResizeCase): Uint8Array {
  const n = k.w * k.h * k.c;
  if (k.pattern === 'noise') return lcgBytes(k.seed, n);
  if (k.pattern === 'smooth') return smoothBytes(k.w, k.h, k.c);
  return new Uint8Array(n).fill(255);
}

describe('Pillow 9.4 resampling port', () => {
  for (const k of pillowFixture.cases) {
    const name = `${k.w}×${k.h}×${k.c} → ${k.ow}×${k.oh} (${k.pattern})`;
    test(`bilinear ${name} matches Pillow`, () => {
      const out = resizeBilinear(caseInput(k), k.w, k.h, k.c, k.ow, k.oh);
      assert.equal(out.length, k.ow * k.oh * k.c);
      assert.equal(sha256(out), k.bilinear);
    });
    test(`nearest ${name} matches Pillow`, () => {
      const out = resizeNearest(caseInput(k), k.w, k.h, k.c, k.ow, k.oh);
      assert.equal(sha256(out), k.nearest);
    });
  }

  test('resizeNearest on a hand-made mask (Uint8Array and Float32Array)', () => {
    // 4 wide × 2 high, one channel.
    const mask = Uint8Array.from([0, 1, 1, 0, 1, 0, 0, 1]);
    // ×2 upsampling: every pixel becomes a 2×2 block (src = floor((o + 0.5) / 2)).
    assert.deepEqual(
      Array.from(resizeNearest(mask, 4, 2, 1, 8, 4)),
      [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1],
    );
    // ÷2: src x = floor((o + 0.5)·2) = 1, 3; src y = 1.
    assert.deepEqual(Array.from(resizeNearest(mask, 4, 2, 1, 2, 1)), [0, 1]);
    // 4 → 3 columns: floor((o + 0.5)·4/3) = 0, 2, 3.
    assert.deepEqual(Array.from(resizeNearest(mask, 4, 2, 1, 3, 2)), [0, 1, 0, 1, 0, 1]);
    const f = Float32Array.from(mask, (v) => v * 0.5);
    const r = resizeNearest(f, 4, 2, 1, 2, 1);
    assert.ok(r instanceof Float32Array);
    assert.deepEqual(Array.from(r), [0, 0.5]);
    // Exact ties: 2 → 7 puts output 3 at (3 + 0.5)·2/7 = 1 exactly, but Pillow accumulates the position by repeated
    // float64 addition (1/7 + 3·2/7 = 0.999…), so it picks source 0, not floor(1) = 1 (checked against Pillow 9.4).
    assert.deepEqual(Array.from(resizeNearest(Uint8Array.from([0, 1]), 2, 1, 1, 7, 1)), [0, 0, 0, 0, 1, 1, 1]);
    assert.deepEqual(
      Array.from(resizeNearest(Uint8Array.from([0, 1, 2, 3]), 1, 4, 1, 1, 14)),
      [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3],
    );
    // Two channels stay together.
    const two = Uint16Array.from([1, 2, 3, 4]);
    assert.deepEqual(Array.from(resizeNearest(two, 2, 1, 2, 4, 1)), [1, 2, 1, 2, 3, 4, 3, 4]);
  });

  test('same-size images pass through unchanged (as a copy)', () => {
    const src = lcgBytes(3, 7 * 5 * 3);
    const out = resizeBilinear(src, 7, 5, 3, 7, 5);
    assert.notEqual(out, src);
    assert.deepEqual(out, src);
    const nn = resizeNearest(src, 7, 5, 3, 7, 5);
    assert.notEqual(nn, src);
    assert.deepEqual(nn, src);
    const rgb: RgbImage = { width: 7, height: 5, data: src };
    const unit = toUnitCHW(rgb, { width: 7, height: 5 });
    for (let p = 0; p < 35; p++) {
      for (let c = 0; c < 3; c++) assert.equal(unit[c * 35 + p], Math.fround(src[p * 3 + c]! / 255));
    }
  });

  test('bad arguments are rejected', () => {
    assert.throws(() => resizeBilinear(new Uint8Array(5), 2, 2, 1, 3, 3), RangeError);
    assert.throws(() => resizeBilinear(new Uint8Array(4), 2, 2, 1, 0, 3), RangeError);
    assert.throws(() => resizeNearest(new Float32Array(4), 2, 2, 1, 3, 1.5), RangeError);
  });
});

describe('decode + resize + ToTensor against the official goldens (Pillow 9.4, libjpeg-turbo 2.1.5)', () => {
  interface GoldenImage {
    index: number;
    file: string;
    decoded_shape: [number, number, number];
    decoded_uint8_sha256: string;
    resized_float32_sha256: string;
  }
  const images = readJson<{ images: GoldenImage[] }>('e2e', 'perturb_S1', 'results.json').images;

  test('there are 22 golden images', () => {
    assert.equal(images.length, 22);
    assert.equal(endianness(), 'LE'); // hashes are of little-endian float32 bytes
  });
  for (const im of images) {
    test(`image ${im.index}: ${im.file}`, async () => {
      const rgb = await decodeImage(join(IMAGES, im.file));
      assert.deepEqual([rgb.height, rgb.width, 3], im.decoded_shape);
      assert.equal(sha256(rgb.data), im.decoded_uint8_sha256, 'decoded pixels differ from PIL');
      const unit = toUnitCHW(rgb, { height: 224, width: 224 });
      assert.equal(unit.length, 3 * 224 * 224);
      assert.equal(sha256(unit), im.resized_float32_sha256, 'resized float32 image differs from the script');
    });
  }
});

describe('decodeImage behaves like PIL convert("RGB")', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('greyscale PNG → grey replicated into R, G, B', async () => {
    const w = 9;
    const h = 4;
    const grey = lcgBytes(11, w * h);
    const png = await sharp(grey, { raw: { width: w, height: h, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    assert.equal((await sharp(png).metadata()).channels, 1);
    const rgb = await decodeImageBuffer(png, 'grey.png');
    assert.equal(rgb.width, w);
    assert.equal(rgb.height, h);
    for (let p = 0; p < w * h; p++)
      assert.deepEqual(Array.from(rgb.data.subarray(p * 3, p * 3 + 3)), [grey[p], grey[p], grey[p]]);
  });

  test('RGBA PNG → alpha dropped without compositing', async () => {
    const w = 6;
    const h = 5;
    const rgba = lcgBytes(12, w * h * 4);
    rgba[3] = 0; // fully transparent pixel keeps its colour
    rgba[7] = 255;
    const png = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
      .png()
      .toBuffer();
    assert.equal((await sharp(png).metadata()).channels, 4);
    const rgb = await decodeImageBuffer(png, 'rgba.png');
    for (let p = 0; p < w * h; p++) {
      assert.deepEqual(Array.from(rgb.data.subarray(p * 3, p * 3 + 3)), Array.from(rgba.subarray(p * 4, p * 4 + 3)));
    }
  });

  test('grey + alpha PNG → grey replicated, alpha dropped', async () => {
    const la = lcgBytes(13, 5 * 3 * 2);
    const png = await sharp(la, { raw: { width: 5, height: 3, channels: 2 } })
      .png()
      .toBuffer();
    const rgb = await decodeImageBuffer(png, 'la.png');
    for (let p = 0; p < 15; p++) {
      const g = la[p * 2]!;
      assert.deepEqual(Array.from(rgb.data.subarray(p * 3, p * 3 + 3)), [g, g, g]);
    }
  });

  test('CMYK JPEG → RGB exactly as Pillow 9.4 converts it', async () => {
    const rgb = await decodeImage(join(FIXTURES, 'cmyk.jpg'));
    assert.equal(rgb.width, 16);
    assert.equal(sha256(rgb.data), pillowFixture.decode['cmyk.jpg']);
  });

  test('embedded ICC profile is ignored, as PIL does', async () => {
    assert.ok((await sharp(join(FIXTURES, 'icc-p3.png')).metadata()).hasProfile);
    const rgb = await decodeImage(join(FIXTURES, 'icc-p3.png'));
    assert.deepEqual(rgb.data, smoothBytes(16, 16, 3));
  });

  test('16-bit greyscale PNG → high byte (documented choice: >> 8)', async () => {
    const rgb = await decodeImage(join(FIXTURES, 'gray16.png'));
    const be = lcgBytes(7, 512);
    for (let p = 0; p < 256; p++) {
      const hi = be[2 * p]!;
      assert.deepEqual(Array.from(rgb.data.subarray(p * 3, p * 3 + 3)), [hi, hi, hi]);
    }
  });

  test('missing, empty, directory, garbage, corrupt and truncated files → FileFormatError naming the file', async () => {
    const expectError = async (file: string, re: RegExp) => {
      await assert.rejects(decodeImage(file), (e: unknown) => {
        assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${e}`);
        assert.equal(e.file, file);
        assert.ok(e.message.startsWith(`${file}: `), e.message);
        assert.match(e.message, re);
        return true;
      });
    };
    await expectError(join(dir, 'missing.jpg'), /file not found/);
    await expectError(dir, /directory/);
    const empty = join(dir, 'empty.png');
    await writeFile(empty, new Uint8Array(0));
    await expectError(empty, /empty/);
    const garbage = join(dir, 'garbage.jpg');
    await writeFile(garbage, 'this is not an image at all\n'.repeat(20));
    await expectError(garbage, /not a readable image/);
    const svg = join(dir, 'vector.svg');
    await writeFile(svg, '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>');
    await expectError(svg, /unsupported image format 'svg'/);
    // A PNG whose header says 0 × 1 pixels (the IHDR width field zeroed).
    const png = Buffer.from(
      await sharp(new Uint8Array(3), { raw: { width: 1, height: 1, channels: 3 } })
        .png()
        .toBuffer(),
    );
    png.writeUInt32BE(0, 16);
    const zero = join(dir, 'zero.png');
    await writeFile(zero, png);
    await expectError(zero, /zero size|not a readable image/);
    const jpeg = await sharp(smoothBytes(64, 64, 3), { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer();
    const truncated = join(dir, 'truncated.jpg');
    await writeFile(truncated, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
    await expectError(truncated, /cannot decode jpeg pixels|not a readable image/);
    await assert.rejects(decodeImageBuffer(new Uint8Array([1, 2, 3]), 'buf.bin'), /^FileFormatError: buf\.bin: /);
  });
});

describe('ToTensor and Normalize in float32 like torch', () => {
  test('ImageNet mean/std for every byte value matches numpy float32', () => {
    // 1 × 256 image holding 0..255 in all three channels.
    const data = new Uint8Array(256 * 3);
    for (let v = 0; v < 256; v++) data.fill(v, v * 3, v * 3 + 3);
    const x = toModelInput(
      { width: 256, height: 1, data },
      { width: 256, height: 1 },
      [0.485, 0.456, 0.406],
      [0.229, 0.224, 0.225],
    );
    // numpy: (np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255) - mean_f32[:, None]) / std_f32[:, None]
    assert.equal(sha256(x), '1d8b9af12b7b391827f7c801265239e21435c7e29b4d78c6189a35e437633897');
    assert.equal(x[0], Math.fround(-2.1179039478302));
    assert.equal(x[256 + 128], Math.fround(0.20518219470977783));
    assert.equal(x[512 + 255], Math.fround(2.640000104904175));
  });

  test('the scripts’ (x − 0.5) / 0.5 and the resize path', () => {
    const rgb: RgbImage = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i * 15) };
    const unit = toUnitCHW(rgb, { width: 5, height: 4 });
    const expected = resizeBilinear(rgb.data, 3, 2, 3, 5, 4);
    for (let p = 0; p < 20; p++)
      for (let c = 0; c < 3; c++) assert.equal(unit[c * 20 + p], Math.fround(expected[p * 3 + c]! / 255));
    const norm = toModelInput(rgb, { width: 5, height: 4 }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
    assert.deepEqual(norm, normalizeCHW(unit, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]));
    for (let i = 0; i < norm.length; i++) assert.equal(norm[i], Math.fround(Math.fround(unit[i]! - 0.5) / 0.5));
    assert.throws(() => normalizeCHW(unit, [0.5, 0.5, 0.5], [1, 0, 1]), RangeError);
    assert.throws(() => toModelInput(rgb, { width: 5, height: 4 }, [0.5], [0.5]), RangeError);
  });
});

describe('ToTensor and Normalize in float64 (the float64 forward)', () => {
  test('8-bit samples are taken as u/255 exactly, as torch with float64 as its default dtype', () => {
    const data = new Uint8Array(256 * 3);
    for (let v = 0; v < 256; v++) data.fill(v, v * 3, v * 3 + 3);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const unit = toUnitCHW({ width: 256, height: 1, data }, { width: 256, height: 1 });
    const x = normalizeCHWF64(unit, mean, std);
    for (let c = 0; c < 3; c++)
      for (let v = 0; v < 256; v++)
        assert.equal(x[c * 256 + v], (v / 255 - mean[c]!) / std[c]!, `channel ${c}, byte ${v}`);
    // numpy float64: (np.arange(256) / 255 - 0.456) / 0.224, element 128.
    assert.equal(x[256 + 128], 0.20518207282913153);
    // The float32 input differs from it (that is the point): ToTensor's float32 rounding of 128/255.
    assert.notEqual(normalizeCHW(unit, mean, std)[256 + 128], x[256 + 128]);
  });

  test('values that are not 8-bit samples are taken as they are', () => {
    const unit = Float32Array.from([0.3, -0.25, 1.5, 0, 1, 128 / 255]);
    const x = normalizeCHWF64(unit, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
    assert.deepEqual(Array.from(x), [
      (Math.fround(0.3) - 0.5) / 0.5,
      (-0.25 - 0.5) / 0.5,
      (1.5 - 0.5) / 0.5,
      -1,
      1,
      (128 / 255 - 0.5) / 0.5,
    ]);
    assert.throws(() => normalizeCHWF64(unit, [0.5, 0.5, 0.5], [1, 0, 1]), RangeError);
    assert.throws(() => normalizeCHWF64(unit, [0.5, 0.5], [0.5, 0.5, 0.5]), RangeError);
  });
});

describe('heat-map overlays', () => {
  test('jet colour map end points and middle', () => {
    assert.deepEqual(jet(0), [0, 0, 0.5]);
    assert.deepEqual(jet(0.5), [0.5, 1, 0.5]);
    assert.deepEqual(jet(1), [0.5, 0, 0]);
    assert.deepEqual(jet(0.25), [0, 0.5, 1]);
    assert.deepEqual(jet(0.75), [1, 0.5, 0]);
    assert.deepEqual(jet(-3), jet(0));
    assert.deepEqual(jet(7), jet(1));
  });

  test('overlayHeatmap: (jet + img/255) / max', () => {
    // Two black pixels: map 0 → jet (0, 0, 128)/255, map 1 → jet (128, 0, 0)/255; max = 128/255.
    const out = overlayHeatmap(new Uint8Array(6), Float32Array.from([0, 1]), 2, 1);
    assert.deepEqual(Array.from(out), [0, 0, 255, 255, 0, 0]);
    // A white pixel with map 0.5: jet(127/255) + 1 → max = 1 + 255/255 = 2 at green.
    const o2 = overlayHeatmap(new Uint8Array([255, 255, 255]), Float32Array.from([0.5]), 1, 1);
    const [r, g, b] = jet(127 / 255).map((v) => Math.round(v * 255));
    const f = Math.fround;
    const exp = [r!, g!, b!].map((j) => Math.trunc(f(255 * f(f(f(j / 255) + 1) / f(f(g! / 255) + 1)))));
    assert.deepEqual(Array.from(o2), exp);
    assert.throws(() => overlayHeatmap(new Uint8Array(5), new Float32Array(2), 2, 1), RangeError);
  });

  test('writePanelsPng lays panels side by side under their titles', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'overlay-test-'));
    try {
      const w = 64;
      const h = 48;
      const img = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) img.set([x * 4, y * 5, 128], (y * w + x) * 3);
      }
      const map = new Float32Array(w * h);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) map[y * w + x] = Math.exp(-((x - 40) ** 2 + (y - 20) ** 2) / 200);
      }
      const file = join(dir, 'sub', 'panels.png');
      await writePanelsPng(file, [
        { title: 'input', rgb: img, width: w, height: h },
        { title: 'heat <&> map', rgb: overlayHeatmap(img, map, w, h), width: w, height: h },
        { title: 'a rather long title for a small panel', rgb: img.slice(0, w * 30 * 3), width: w, height: 30 },
      ]);
      const meta = await sharp(await readFile(file)).metadata();
      assert.equal(meta.format, 'png');
      assert.equal(meta.channels, 3);
      assert.equal(meta.width, 8 + 3 * w + 2 * 8 + 8);
      assert.equal(meta.height, 8 + 24 + h + 8);
      const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      // The first panel's pixels are where they should be.
      const at = (x: number, y: number) =>
        Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
      assert.deepEqual(at(8 + 10, 32 + 7), [40, 35, 128]);
      // Some dark text pixels in the title band above the first panel.
      let dark = 0;
      for (let y = 8; y < 32; y++) for (let x = 8; x < 8 + w; x++) if (at(x, y)[0]! < 128) dark++;
      assert.ok(dark > 10, `title text rendered (${dark} dark pixels)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
