import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ExplainJson } from '../src/commands/explain-run.js';
import { encodeNpy } from '../src/formats/npy.js';
import { bench } from './helpers/cli.js';
import {
  GOLDEN_NAME,
  type GoldenCase,
  goldenArray,
  goldenPath,
  maxAbs,
  maxAbsDiff,
  pearson,
  readGoldenTensors,
  readJson,
  toleranceFor,
} from './helpers/golden.js';

describe('bench explain (command line)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-explain-'));
  const config = goldenPath('vit', 'S1', 'config.json');
  const weights = goldenPath('vit', 'S1', 'weights.safetensors');

  for (const caseName of ['random', 'smooth']) {
    test(`reproduces the golden maps of S1/${caseName} from a .npy input (all methods, top and target)`, () => {
      const g = readGoldenTensors('vit', 'S1', `case-${caseName}.safetensors`);
      const meta = readJson<GoldenCase>('vit', 'S1', `case-${caseName}.json`);
      const npy = join(dir, `${caseName}.npy`);
      const input = g.get('input')!;
      writeFileSync(npy, encodeNpy({ shape: input.shape, data: input.data as Float32Array }));
      for (const vis of ['top', 'target'] as const) {
        const json = join(dir, `${caseName}-${vis}.json`);
        const png = join(dir, `${caseName}-${vis}.png`);
        const classArgs = vis === 'target' ? ['--class', String(meta.target_class)] : [];
        const r = bench([
          'explain',
          '--model-config',
          config,
          '--weights',
          weights,
          '--input',
          npy,
          '--method',
          'all',
          ...classArgs,
          '--json',
          json,
          '--out',
          png,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /backend: /);
        const out = JSON.parse(readFileSync(json, 'utf8')) as ExplainJson;
        assert.ok(['wasm', 'cpu', 'tensorflow'].includes(out.backend));
        assert.equal(out.predicted, meta.top_class);
        assert.ok(maxAbsDiff(out.logits, goldenArray(g, 'logits.vit_new')) <= 1e-4);
        assert.equal(Object.keys(out.methods).length, 6);
        for (const [name, m] of Object.entries(out.methods)) {
          const ref = GOLDEN_NAME[name]!;
          const entry = meta.methods.find((e) => e.method === ref && e.vis_class === vis)!;
          const tol = toleranceFor(name, entry);
          const raw = goldenArray(g, `${ref}.${vis}.raw`);
          assert.equal(
            m.raw.length,
            m.rawShape.reduce((a, b) => a * b, 1),
          );
          assert.deepEqual(m.mapShape, [224, 224]);
          assert.ok(maxAbsDiff(m.raw, raw) <= tol.rawRel * maxAbs(raw), `${name}/${vis} raw`);
          assert.ok(maxAbsDiff(m.map, goldenArray(g, `${ref}.${vis}.final`)) <= tol.finalAbs, `${name}/${vis} final`);
          if (tol.minPearson) assert.ok(pearson(m.raw, goldenArray(g, `${ref}.${vis}.raw_f64`)) >= tol.minPearson);
          if (entry.method !== 'rollout' && entry.method !== 'attn_last_layer') assert.equal(m.class, entry.class_used);
          else assert.equal(m.class, null);
        }
        const pngBytes = readFileSync(png);
        assert.deepEqual([...pngBytes.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
      }
    });
  }

  test('--help describes every command and option', () => {
    const top = bench(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /bench explain/);
    const r = bench(['explain', '--help']);
    assert.equal(r.code, 0);
    for (const opt of [
      '--input',
      '--model',
      '--model-config',
      '--weights',
      '--method',
      '--class',
      '--start-layer',
      '--backend',
      '--out',
      '--json',
      '--norm',
    ]) {
      assert.match(r.stdout, new RegExp(`${opt}\\b`), opt);
    }
  });

  test('bad input: one clear line naming the file, non-zero exit, no stack trace', () => {
    const missing = join(dir, 'nope.safetensors');
    const npy = join(dir, 'random.npy');
    const cases: [string[], RegExp][] = [
      [
        ['explain', '--model-config', config, '--weights', missing, '--input', npy],
        new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*not found`),
      ],
      [
        ['explain', '--model-config', config, '--weights', weights, '--input', join(dir, 'missing.png')],
        /missing\.png: /,
      ],
      [
        ['explain', '--model', 'vit_base_patch16_224', '--weights', weights, '--input', npy],
        /weights do not fit model 'vit_base_patch16_224'.*cls_token/,
      ],
      [
        ['explain', '--model-config', config, '--weights', weights, '--input', npy, '--method', 'grad_rollout'],
        /unknown method 'grad_rollout'/,
      ],
      [
        ['explain', '--model-config', config, '--weights', weights, '--input', npy, '--class', '99'],
        /class 99 is out of range/,
      ],
      [
        ['explain', '--model-config', config, '--weights', weights, '--input', npy, '--bogus'],
        /Unknown argument: bogus/,
      ],
    ];
    writeFileSync(npy, encodeNpy({ shape: [1, 3, 224, 224], data: new Float32Array(3 * 224 * 224) }));
    for (const [args, pattern] of cases) {
      const r = bench(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /bench: error: /);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    const wrongShape = join(dir, 'small.npy');
    writeFileSync(wrongShape, encodeNpy({ shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) }));
    const r = bench(['explain', '--model-config', config, '--weights', weights, '--input', wrongShape]);
    assert.match(r.stderr, /small\.npy: expected a normalised float tensor of shape \[1,3,224,224\]/);
  });
});

test('bench explain on a JPEG: the same maps as explaining the Pillow-exact preprocessed tensor', async () => {
  const { decodeImage, toModelInput } = await import('../src/data/image.js');
  const { loadGoldenVit } = await import('./helpers/golden.js');
  const { explain } = await import('../src/methods/explain.js');
  const { resolveMethods } = await import('../src/methods/registry.js');
  const tf = await import('@tensorflow/tfjs');
  const jpeg = goldenPath('e2e', 'perturb_S1', 'imagenet_val', 'val', 'n01443537', 'ILSVRC2012_val_00000398.JPEG');
  const dir = mkdtempSync(join(tmpdir(), 'bench-explain-jpeg-'));
  const json = join(dir, 'out.json');
  const r = bench([
    'explain',
    '--model-config',
    goldenPath('vit', 'S1', 'config.json'),
    '--weights',
    goldenPath('vit', 'S1', 'formats', 'weights.google.npz'),
    '--input',
    jpeg,
    '--method',
    'rollout,transformer_attribution',
    '--json',
    json,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(readFileSync(json, 'utf8')) as ExplainJson;
  const model = await loadGoldenVit('S1');
  const x = toModelInput(await decodeImage(jpeg), { height: 224, width: 224 }, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  const ex = explain(model, tf.tensor4d(x, [1, 3, 224, 224]), resolveMethods(['rollout', 'transformer_attribution']));
  assert.deepEqual(out.predicted, ex.predicted[0]);
  for (const m of ex.methods) assert.deepEqual(out.methods[m.method]!.raw, Array.from(m.raw[0]!));
});
