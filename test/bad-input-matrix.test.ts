import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { EMBEDDED } from '../src/embedded.js';
import { ExplanationWriter } from '../src/formats/expl-hdf5.js';
import { encodeNpy } from '../src/formats/npy.js';
import { benchAsync } from './helpers/cli.js';
import { goldenPath } from './helpers/golden.js';

/**
 * The bad-input matrix (issue 8): every reader and command fed broken input through the command line, as a user
 * would. A row says how the input is broken, which command reads it, and what must come back: either a clean run
 * (inputs that are unusual but valid, e.g. a 1×1 or a CMYK image) or exactly one error line
 * `bench: error: <file>: <what was expected / found>` with a non-zero exit, no stack trace, within a time limit.
 * Rows run two at a time (each is a separate process).
 */

const ROOT = mkdtempSync(join(tmpdir(), 'bench-bad-input-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));
const p = (name: string) => join(ROOT, name);

const CONFIG = EMBEDDED.model.config;
const WEIGHTS = EMBEDDED.model.weights;
const FORMATS = goldenPath('vit', 'S1', 'formats');
const MODEL = ['--model-config', CONFIG, '--weights', WEIGHTS];

interface Row {
  /** What is broken, in words (the report lists it). */
  input: string;
  args: () => string[];
  /** 'ok': the command must succeed. Otherwise the file the error line must name and what it must say. */
  expect: 'ok' | { file: () => string; says: RegExp };
}

const err = (file: () => string, says: RegExp) => ({ file, says });

// --- making the broken inputs ---------------------------------------------------------------------------------

function safetensorsParts(file: string) {
  const b = readFileSync(file);
  const hl = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + hl).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  return { header, data: b.subarray(8 + hl) };
}

function safetensorsBytes(header: unknown, data: Uint8Array, lieLength?: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(lieLength ?? json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** The embedded weights with their header edited by `edit`. */
function liar(name: string, edit: (h: ReturnType<typeof safetensorsParts>['header']) => void): void {
  const { header, data } = safetensorsParts(WEIGHTS);
  edit(header);
  writeFileSync(p(name), safetensorsBytes(header, data));
}

function cut(src: string, name: string, fraction: number): void {
  const b = readFileSync(src);
  writeFileSync(p(name), b.subarray(0, Math.floor(b.length * fraction)));
}

function flipMiddle(src: string, name: string): void {
  const b = Buffer.from(readFileSync(src));
  b[b.length >> 1]! ^= 0x40;
  writeFileSync(p(name), b);
}

function config(name: string, edit: Record<string, unknown>): void {
  writeFileSync(p(name), JSON.stringify({ ...JSON.parse(readFileSync(CONFIG, 'utf8')), ...edit }));
}

/** A PNG whose IHDR claims another size (its CRC fixed), so the size check is reached without a huge file. */
function pngClaiming(src: Uint8Array, width: number, height: number): Uint8Array {
  const b = Buffer.from(src);
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(crc32(b.subarray(12, 29)) >>> 0, 29);
  return b;
}

async function makeInputs(): Promise<void> {
  // weights
  cut(WEIGHTS, 'half.safetensors', 0.5);
  cut(WEIGHTS, 'header-cut.safetensors', 100 / readFileSync(WEIGHTS).length);
  writeFileSync(p('empty.safetensors'), '');
  liar('overlap.safetensors', (h) => {
    h['blocks.0.norm1.bias']!.data_offsets = [...h['blocks.0.norm1.weight']!.data_offsets];
  });
  liar('past-end.safetensors', (h) => {
    const last = Object.values(h)
      .filter((t) => t.data_offsets)
      .sort((a, b) => b.data_offsets[1] - a.data_offsets[1])[0]!;
    last.data_offsets = [last.data_offsets[0] + 64, last.data_offsets[1] + 64];
  });
  liar('shape-lie.safetensors', (h) => {
    h['norm.bias']!.shape = [47];
  });
  {
    const { header, data } = safetensorsParts(WEIGHTS);
    writeFileSync(p('length-lie.safetensors'), safetensorsBytes(header, data, readFileSync(WEIGHTS).length));
    writeFileSync(p('tail.safetensors'), safetensorsBytes(header, Buffer.concat([data, Buffer.alloc(16)])));
    const json = Buffer.from(JSON.stringify(header));
    json[json.indexOf(':')] = 0x3b; // the first ':' becomes ';'
    const bad = Buffer.alloc(8 + json.length + data.length);
    bad.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(bad, 8);
    bad.set(data, 8 + json.length);
    writeFileSync(p('bad-json.safetensors'), bad);
  }
  cut(join(FORMATS, 'weights.google.npz'), 'half.npz', 0.5);
  flipMiddle(join(FORMATS, 'weights.google.npz'), 'flipped.npz');
  cut(join(FORMATS, 'weights.zip.pth'), 'half.zip.pth', 0.5);
  flipMiddle(join(FORMATS, 'weights.zip.pth'), 'flipped.zip.pth');
  cut(join(FORMATS, 'weights.legacy.pth'), 'cut.legacy.pth', 0.6);
  const h5 = await ExplanationWriter.create(p('keras.h5'), { height: 4, width: 4 });
  h5.close();
  writeFileSync(p('fake-huge.safetensors'), Buffer.alloc(64, 0x5a));

  // model configs
  config('patch.json', { img_size: 225 });
  config('heads.json', { num_heads: 5 });
  config('zero-depth.json', { depth: 0 });
  writeFileSync(p('not-json.json'), '{"img_size": 224, "patch_size": 16,');
  const { depth: _d, ...noDepth } = JSON.parse(readFileSync(CONFIG, 'utf8')) as Record<string, unknown>;
  writeFileSync(p('no-depth.json'), JSON.stringify(noDepth));
  writeFileSync(
    p('vit-huge.json'),
    JSON.stringify({
      name: 'vit_huge_patch14_224',
      img_size: 224,
      patch_size: 14,
      in_chans: 3,
      embed_dim: 1280,
      depth: 32,
      num_heads: 16,
      mlp_ratio: 4,
      num_classes: 1000,
    }),
  );

  // images
  writeFileSync(p('empty.png'), '');
  writeFileSync(p('text.png'), 'this is not a picture\n');
  cut(EMBEDDED.sampleImage, 'cut.png', 0.5);
  const solid = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: '#3a7' } });
  const one = await solid(1, 1).png().toBuffer();
  writeFileSync(p('one.png'), one);
  writeFileSync(p('grey.png'), await solid(40, 30).toColourspace('b-w').png().toBuffer());
  writeFileSync(p('huge.png'), await solid(10000, 10000).png({ compressionLevel: 9 }).toBuffer());
  writeFileSync(p('bomb.png'), pngClaiming(one, 20000, 10000));
  writeFileSync(p('zero.png'), pngClaiming(one, 0, 10));
  const npy = encodeNpy({ shape: [1, 3, 224, 224], data: new Float32Array(3 * 224 * 224).fill(Number.NaN) });
  writeFileSync(p('nan.npy'), npy);
  writeFileSync(p('cut.npy'), npy.subarray(0, npy.length - 100));

  // segmentation data
  cut(EMBEDDED.segData, 'cut-v73.mat', 0.3);
  cut(join(import.meta.dirname, 'fixtures', 'gtsegs-level5.mat'), 'cut-level5.mat', 0.7);
  writeFileSync(p('text.mat'), 'MATLAB? no.\n');

  // explanation files (perturb)
  writeFileSync(p('text.hdf5'), 'not hdf5\n');
  const w = await ExplanationWriter.create(p('results.hdf5'), { height: 224, width: 224 });
  w.append([{ vis: new Float32Array(224 * 224), image: new Float32Array(3 * 224 * 224), target: 0 }]);
  w.close();
  cut(p('results.hdf5'), 'cut-results.hdf5', 0.5);

  // an image folder with one broken image
  const folder = p('imagenet');
  cpSync(EMBEDDED.imageFolder, folder, { recursive: true });
  writeFileSync(join(folder, 'val', 'n00000000', 'ILSVRC2012_val_00000001.JPEG'), 'truncated\n');

  // ERASER data with a bad JSON line
  const eraser = p('eraser');
  cpSync(EMBEDDED.eraser.data, eraser, { recursive: true });
  const lines = readFileSync(join(eraser, 'test.jsonl'), 'utf8').split('\n');
  lines[1] = lines[1]!.slice(0, 40);
  writeFileSync(join(eraser, 'test.jsonl'), lines.join('\n'));

  // output paths
  writeFileSync(p('a-file'), 'x');
  mkdirSync(p('a-folder'));
}

// --- the matrix -----------------------------------------------------------------------------------------------

const explainWeights = (file: string) => () => ['explain', '--model-config', CONFIG, '--weights', p(file)];
const explainInput = (file: string) => () => ['explain', ...MODEL, '--input', p(file)];

const ROWS: Row[] = [
  // weights readers
  {
    input: 'safetensors cut in half',
    args: explainWeights('half.safetensors'),
    expect: err(() => p('half.safetensors'), /data_offsets end \d+ is past the end of the data .*truncated/),
  },
  {
    input: 'safetensors cut inside its header',
    args: explainWeights('header-cut.safetensors'),
    expect: err(() => p('header-cut.safetensors'), /header length \d+ exceeds the file size 100/),
  },
  {
    input: 'empty weights file',
    args: explainWeights('empty.safetensors'),
    expect: err(() => p('empty.safetensors'), /the file is empty/),
  },
  {
    input: 'safetensors header: two tensors share their bytes (overlapping offsets)',
    args: explainWeights('overlap.safetensors'),
    expect: err(() => p('overlap.safetensors'), /overlap tensor/),
  },
  {
    input: 'safetensors header: offsets past the end of the data',
    args: explainWeights('past-end.safetensors'),
    expect: err(() => p('past-end.safetensors'), /past the end of the data/),
  },
  {
    input: 'safetensors header: a shape that does not match its byte range',
    args: explainWeights('shape-lie.safetensors'),
    expect: err(
      () => p('shape-lie.safetensors'),
      /tensor 'norm\.bias': data_offsets \[\d+, \d+\] hold 192 bytes, but F32 \[47\] needs 188/,
    ),
  },
  {
    input: 'safetensors header length field = the file size',
    args: explainWeights('length-lie.safetensors'),
    expect: err(() => p('length-lie.safetensors'), /header length \d+ exceeds the file size/),
  },
  {
    input: 'safetensors with 16 bytes no tensor claims',
    args: explainWeights('tail.safetensors'),
    expect: err(
      () => p('tail.safetensors'),
      /tensors cover \d+ bytes of data, but the file holds \d+ after the header/,
    ),
  },
  {
    input: 'safetensors header that is not valid JSON',
    args: explainWeights('bad-json.safetensors'),
    expect: err(() => p('bad-json.safetensors'), /the header is not valid JSON/),
  },
  {
    input: 'weights of another model size (golden S1 weights, embedded config)',
    args: () => ['explain', '--model-config', CONFIG, '--weights', goldenPath('vit', 'S1', 'weights.safetensors')],
    expect: err(
      () => goldenPath('vit', 'S1', 'weights.safetensors'),
      /weights do not fit model 'vit_shapes_tiny'.*has shape/,
    ),
  },
  {
    input: 'Google .npz cut in half',
    args: explainWeights('half.npz'),
    expect: err(() => p('half.npz'), /not a valid zip archive \(truncated or corrupt\?\)/),
  },
  {
    input: 'Google .npz with one byte changed in its data',
    args: explainWeights('flipped.npz'),
    expect: err(() => p('flipped.npz'), /not a valid zip archive .*(CRC-32|does not inflate)/),
  },
  {
    input: 'PyTorch zip checkpoint cut in half',
    args: explainWeights('half.zip.pth'),
    expect: err(() => p('half.zip.pth'), /not a valid zip archive/),
  },
  {
    input: 'PyTorch zip checkpoint with one byte changed in a storage',
    args: explainWeights('flipped.zip.pth'),
    expect: err(() => p('flipped.zip.pth'), /entry '[^']+' fails its CRC-32 check/),
  },
  {
    input: 'legacy PyTorch checkpoint cut at 60%',
    args: explainWeights('cut.legacy.pth'),
    expect: err(() => p('cut.legacy.pth'), /truncated/),
  },
  {
    input: 'an HDF5 file given as weights',
    args: explainWeights('keras.h5'),
    expect: err(
      () => p('keras.h5'),
      /unrecognised weights format \(looks like an HDF5 file \(Keras \.h5\?\)\); expected safetensors/,
    ),
  },
  {
    input: 'ViT-H/14 config on the wasm backend (fake 64-byte weights: must fail before reading them)',
    args: () => [
      'explain',
      '--model-config',
      p('vit-huge.json'),
      '--weights',
      p('fake-huge.safetensors'),
      '--backend',
      'wasm',
    ],
    expect: err(
      () => p('fake-huge.safetensors'),
      /vit_huge_patch14_224 needs about \d+\.\d GiB .*more than the wasm backend's 4 GiB heap; install @tensorflow\/tfjs-node \(--backend tensorflow\)/,
    ),
  },
  // model configs
  {
    input: 'config: img_size 225 with patch_size 16',
    args: () => ['explain', '--model-config', p('patch.json'), '--weights', WEIGHTS],
    expect: err(() => p('patch.json'), /invalid model config: img_size 225 is not divisible by patch_size 16/),
  },
  {
    input: 'config: 5 heads for width 48',
    args: () => ['explain', '--model-config', p('heads.json'), '--weights', WEIGHTS],
    expect: err(() => p('heads.json'), /num_heads 5 does not divide embed_dim 48/),
  },
  {
    input: 'config: depth 0',
    args: () => ['explain', '--model-config', p('zero-depth.json'), '--weights', WEIGHTS],
    expect: err(() => p('zero-depth.json'), /depth must be a positive integer, found 0/),
  },
  {
    input: 'config: not JSON',
    args: () => ['explain', '--model-config', p('not-json.json'), '--weights', WEIGHTS],
    expect: err(() => p('not-json.json'), /model config is not valid JSON/),
  },
  {
    input: 'config: no depth',
    args: () => ['explain', '--model-config', p('no-depth.json'), '--weights', WEIGHTS],
    expect: err(() => p('no-depth.json'), /missing field 'depth'/),
  },
  // images
  {
    input: 'empty image file',
    args: explainInput('empty.png'),
    expect: err(() => p('empty.png'), /empty file, not an image/),
  },
  {
    input: 'text file named .png',
    args: explainInput('text.png'),
    expect: err(() => p('text.png'), /not a readable image/),
  },
  {
    input: 'PNG cut in half',
    args: explainInput('cut.png'),
    expect: err(() => p('cut.png'), /(not a readable image|cannot decode png pixels)/),
  },
  {
    input: 'PNG header claiming 20000×10000 pixels (decompression bomb)',
    args: explainInput('bomb.png'),
    expect: err(() => p('bomb.png'), /pixel limit/),
  },
  {
    input: 'PNG header claiming 0×10 pixels',
    args: explainInput('zero.png'),
    expect: err(() => p('zero.png'), /not a readable image/),
  },
  { input: '1×1 PNG (valid: upscaled as Pillow does)', args: explainInput('one.png'), expect: 'ok' },
  { input: 'greyscale PNG (valid)', args: explainInput('grey.png'), expect: 'ok' },
  { input: '10000×10000 PNG (valid, below the pixel limit)', args: explainInput('huge.png'), expect: 'ok' },
  {
    input: 'CMYK JPEG (valid)',
    args: () => ['explain', ...MODEL, '--input', join(import.meta.dirname, 'fixtures', 'cmyk.jpg')],
    expect: 'ok',
  },
  {
    input: '16-bit greyscale PNG (valid)',
    args: () => ['explain', ...MODEL, '--input', join(import.meta.dirname, 'fixtures', 'gray16.png')],
    expect: 'ok',
  },
  {
    input: '.npy input full of NaN',
    args: explainInput('nan.npy'),
    expect: err(() => p('nan.npy'), /NaN or infinite/),
  },
  {
    input: '.npy input cut short',
    args: explainInput('cut.npy'),
    expect: err(() => p('cut.npy'), /truncated \.npy data/),
  },
  // segmentation data
  {
    input: 'MATLAB v7.3 (HDF5) segmentation file cut at 30%',
    args: () => ['seg', '--data', p('cut-v73.mat'), '--out', p('seg-out-1')],
    expect: err(() => p('cut-v73.mat'), /truncated: the HDF5 superblock records \d+ bytes, but the file has only \d+/),
  },
  {
    input: 'Level-5 MAT segmentation file cut at 70%',
    args: () => ['seg', '--data', p('cut-level5.mat'), '--out', p('seg-out-2')],
    expect: err(() => p('cut-level5.mat'), /Level-5 MAT-file: truncated/),
  },
  {
    input: 'text file as segmentation data',
    args: () => ['seg', '--data', p('text.mat'), '--out', p('seg-out-3')],
    expect: err(
      () => p('text.mat'),
      /not a MAT-file: expected a MATLAB v7\.3 \(HDF5\) or Level-5 MAT-file, found text starting/,
    ),
  },
  // explanation files
  {
    input: 'perturb: text file as the explanation file',
    args: () => ['perturb', '--vis', p('text.hdf5'), '--out', p('perturb-out-1')],
    expect: err(() => p('text.hdf5'), /not an HDF5 file \(no HDF5 signature/),
  },
  {
    input: 'perturb: explanation file cut in half',
    args: () => ['perturb', '--vis', p('cut-results.hdf5'), '--out', p('perturb-out-2')],
    expect: err(() => p('cut-results.hdf5'), /truncated/),
  },
  // data sets
  {
    input: 'visualize: an image folder holding a broken JPEG',
    args: () => ['visualize', '--data', p('imagenet'), '--out', p('vis-out'), '--quiet'],
    expect: err(() => join(p('imagenet'), 'val', 'n00000000', 'ILSVRC2012_val_00000001.JPEG'), /not a readable image/),
  },
  {
    input: 'eraser: test.jsonl with a cut JSON line',
    args: () => ['eraser', '--data-dir', p('eraser'), '--out', p('eraser-out'), '--quiet'],
    expect: err(() => join(p('eraser'), 'test.jsonl'), /line 2: not valid JSON/),
  },
  // output paths
  {
    input: 'explain --json inside a regular file',
    args: () => ['explain', '--json', join(p('a-file'), 'out.json')],
    expect: err(
      () => join(p('a-file'), 'out.json'),
      /cannot write --json here: .*a-file is a file, so no folder can be created in it/,
    ),
  },
  {
    input: 'explain --out naming an existing folder',
    args: () => ['explain', '--out', p('a-folder')],
    expect: err(() => p('a-folder'), /cannot write --out here: it is a folder, expected a file name/),
  },
  {
    input: 'seg --out naming a regular file',
    args: () => ['seg', '--out', p('a-file')],
    expect: err(() => p('a-file'), /cannot write --out here: it is a file, expected a folder/),
  },
  {
    input: 'visualize --out inside a regular file',
    args: () => ['visualize', '--out', join(p('a-file'), 'vis')],
    expect: err(() => join(p('a-file'), 'vis'), /cannot write --out here/),
  },
  {
    input: 'perturb --json inside a regular file',
    args: () => ['perturb', '--vis', p('results.hdf5'), '--json', join(p('a-file'), 's.json')],
    expect: err(() => join(p('a-file'), 's.json'), /cannot write --json here/),
  },
  {
    input: 'eraser --out naming a regular file',
    args: () => ['eraser', '--out', p('a-file')],
    expect: err(() => p('a-file'), /cannot write --out here: it is a file, expected a folder/),
  },
  {
    input: 'merge into a folder inside a regular file',
    args: () => ['merge', join(p('a-file'), 'merged'), p('a-folder')],
    expect: err(() => join(p('a-file'), 'merged'), /cannot write the merged output here/),
  },
];

// --- running it -----------------------------------------------------------------------------------------------

const TIME_LIMIT_MS = 120_000;

describe('bad-input matrix: one clear error line (file, expected, found) and a non-zero exit', {
  concurrency: 2,
}, () => {
  before(makeInputs);
  for (const row of ROWS) {
    test(row.input, async () => {
      const args = row.args();
      const r = await benchAsync(args, { cwd: ROOT, timeoutMs: TIME_LIMIT_MS });
      const cmd = `bench ${args.join(' ')}`;
      assert.equal(r.signal, null, `${cmd}: killed (${r.signal}): a hang or a crash`);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('bench: error: '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${cmd}: a stack trace`);
      if (row.expect === 'ok') {
        assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
        assert.deepEqual(errors, []);
        process.stderr.write(`matrix: ${row.input}: runs (exit 0)\n`);
        return;
      }
      assert.notEqual(r.code, 0, `${cmd}: exit 0`);
      assert.equal(errors.length, 1, `${cmd}: expected one error line, got:\n${r.stderr}`);
      const line = errors[0]!;
      const file = row.expect.file();
      assert.ok(line.startsWith(`bench: error: ${file}: `), `${cmd}: the error names ${file}: ${line}`);
      assert.match(line, row.expect.says);
      process.stderr.write(`matrix: ${row.input}: ${line.replaceAll(ROOT, '$TMP')}\n`);
    });
  }
});
