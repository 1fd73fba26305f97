/**
 * `npm run precision:cost`: what the float64 passes (`--forward f64`: the forward, backward and relevance passes in
 * float64, src/methods/float64-passes.ts) cost on the ViT-B/16 six-method sweep, measured side by side with the
 * float32 passes in one process: the same model (deterministic random weights, as bench:speed), the same images, the
 * two modes alternating image by image (the order swapped every round), one warm-up sweep each first.
 *
 *   npm run precision:cost -- [--images 3] [--rounds 2] [--model vit_base_patch16_224] [--json FILE]
 *
 * Prints the median seconds per image of each, their ratio (the issue's bar: ≤ 1.25), the products' engine, and
 * how far the maps of the two modes are apart (max |Δ| / max |map| per method: the size of float32 noise here).
 */

import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/engine/backend.js';
import { f64Products } from '../src/engine/f64-matmul.js';
import * as tf from '../src/engine/tf.js';
import { explain } from '../src/methods/explain.js';
import { resolveMethods } from '../src/methods/registry.js';
import type { ForwardPrecision } from '../src/models/forward-precision.js';
import { VisionTransformer } from '../src/models/vit.js';
import { vitPreset } from '../src/models/vit-config.js';
import { vitWeightsFromStateDict } from '../src/models/vit-weights.js';
import { randomStateDict } from './random-vit-weights.js';

const args = await yargs(hideBin(process.argv))
  .option('images', { type: 'number', default: 3 })
  .option('rounds', { type: 'number', default: 2 })
  .option('model', { type: 'string', default: 'vit_base_patch16_224' })
  .option('backend', { type: 'string', default: 'wasm' })
  .option('json', { type: 'string' })
  .strict()
  .parseAsync();

const backend = await initBackend(args.backend as 'wasm');
const cfg = vitPreset(args.model);
const model = new VisionTransformer(cfg, vitWeightsFromStateDict(randomStateDict(cfg), cfg, '(random weights)'));
const methods = resolveMethods(['paper']);
const products = await f64Products();
const plane = cfg.in_chans * cfg.img_size * cfg.img_size;
const image = (i: number) => {
  const a = new Float32Array(plane);
  let x = (1000 + i) >>> 0;
  for (let j = 0; j < plane; j++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    a[j] = (x / 2 ** 32) * 2 - 1;
  }
  return a;
};

type Mode = ForwardPrecision;
async function sweep(mode: Mode, i: number): Promise<{ seconds: number; maps: Float32Array[] }> {
  process.env.BENCH_FORWARD = mode;
  const input = tf.tensor4d(image(i), [1, cfg.in_chans, cfg.img_size, cfg.img_size]);
  const t0 = performance.now();
  const ex = await explain(model, input, methods);
  const seconds = (performance.now() - t0) / 1000;
  input.dispose();
  return { seconds, maps: ex.methods.map((m) => m.raw[0]!) };
}

const times: Record<Mode, number[]> = { f32: [], f64: [] };
const gaps = new Map<string, number>();
console.log(
  `backend ${backend.description}; ${cfg.name}; float64 products: ${products.engine}; methods: ${methods.map((m) => m.name).join(', ')}`,
);
for (const mode of ['f32', 'f64'] as const) await sweep(mode, 0); // warm-up
for (let r = 0; r < args.rounds; r++) {
  for (let i = 0; i < args.images; i++) {
    const order: Mode[] = (r + i) % 2 ? ['f64', 'f32'] : ['f32', 'f64'];
    const out: Partial<Record<Mode, Float32Array[]>> = {};
    for (const mode of order) {
      const { seconds, maps } = await sweep(mode, i + 1);
      times[mode].push(seconds);
      out[mode] = maps;
      console.log(`round ${r + 1} image ${i + 1} ${mode}: ${seconds.toFixed(2)} s`);
    }
    methods.forEach((m, k) => {
      const a = out.f32![k]!;
      const b = out.f64![k]!;
      let d = 0;
      let mx = 0;
      for (let j = 0; j < a.length; j++) {
        d = Math.max(d, Math.abs(a[j]! - b[j]!));
        mx = Math.max(mx, Math.abs(b[j]!));
      }
      gaps.set(m.name, Math.max(gaps.get(m.name) ?? 0, d / mx));
    });
  }
}
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const result = {
  date: new Date().toISOString(),
  model: cfg.name,
  backend: backend.description,
  products: products.engine,
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  loadavg: loadavg(),
  images: args.images,
  rounds: args.rounds,
  secondsPerImage: { f32: median(times.f32), f64: median(times.f64) },
  ratio: median(times.f64) / median(times.f32),
  runs: times,
  mapGapF32vsF64: Object.fromEntries(gaps),
};
console.log(
  `median s/image: --forward f32 ${result.secondsPerImage.f32.toFixed(2)}, --forward f64 ${result.secondsPerImage.f64.toFixed(2)}: ratio ${result.ratio.toFixed(3)} (bar ≤ 1.25)`,
);
for (const [m, g] of gaps) console.log(`  ${m}: max |f32 − f64 mode| / max = ${g.toExponential(2)}`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
