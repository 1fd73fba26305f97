import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ExplainJson } from '../src/commands/explain-run.js';
import { encodeNpy } from '../src/formats/npy.js';
import { bench } from './helpers/cli.js';
import { assertClose, maxAbs, maxAbsDiff, pearson } from './helpers/compare.js';
import {
  GOLDEN_NAME,
  type GoldenCase,
  goldenArray,
  goldenPath,
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
          'paper', // the paper's six, which the golden holds
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
        // Logits: golden/vit/README.md's float32 atol 1e-4; measured max|Δ| 2.7e-6 (wasm, both cases).
        assert.ok(maxAbsDiff(out.logits, goldenArray(g, 'logits.vit_new')) <= 1e-4);
        assert.equal(Object.keys(out.methods).length, 6);
        for (const [name, m] of Object.entries(out.methods)) {
          const ref = GOLDEN_NAME[name]!;
          const entry = meta.methods.find((e) => e.method === ref && e.vis_class === vis)!;
          // The ViT golden suite's tolerances (toleranceFor, where their sources are). Measured through the
          // command line (wasm), the same as in-process: well-conditioned raw ≤ 5.1e-6 of max, final ≤ 4.3e-6;
          // full LRP and transformer attribution raw ≤ 2.61 × the reference's float32 gap, final ≤ 2.86 × gap
          // (bound 3.5 ×), Pearson ≥ 0.99887 (bound 0.998).
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

test("bench explain on a JPEG: the official script's maps, prediction and logits for that image", () => {
  // Image 5 of e2e/perturb_S1 (180 × 240, decoded, resized to 224 and normalised by bench itself), against what
  // the official generate_visualizations.py computed for it (intermediates.safetensors, vis.<M>.top.raw) and
  // the ViT_new logits of results.json. Weights from the Google .npz, so the converter is on this path too.
  const i = 5;
  const golden = readJson<{ images: { file: string; vit_new_prediction: number; vit_new_logits_batch16: number[] }[] }>(
    'e2e',
    'perturb_S1',
    'results.json',
  ).images[i]!;
  const inter = readGoldenTensors('e2e', 'perturb_S1', 'intermediates.safetensors');
  const jpeg = goldenPath('e2e', 'perturb_S1', 'imagenet_val', golden.file);
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
    'rollout,transformer_attribution,gradcam',
    '--json',
    json,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(readFileSync(json, 'utf8')) as ExplainJson;
  assert.equal(out.predicted, golden.vit_new_prediction);
  // Logits: measured max|Δ| 2.6e-6; bound 1e-4, the golden README's float32 bound for logits.
  assertClose(out.logits, golden.vit_new_logits_batch16, 1e-4, 'ViT_new logits', 1);
  // Raw maps, max|Δ|/max|ref|: measured 2.4e-6 (rollout), 4.1e-6 (gradcam), 2.1e-5 (transformer attribution,
  // well conditioned on this image); bound 1e-4, the README's float32 bound for the well-conditioned methods
  // (for transformer attribution, the measured error × 4.7).
  for (const m of ['rollout', 'transformer_attribution', 'gradcam']) {
    const ref = goldenArray(inter, `vis.${GOLDEN_NAME[m]}.top.raw`).subarray(i * 196, (i + 1) * 196);
    assertClose(out.methods[m]!.raw, ref, 1e-4, `${m} raw map`);
  }
});
