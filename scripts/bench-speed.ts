/**
 * Speed benchmark: seconds per image for each method alone, for all six together, and for the forward
 * pass alone, on the ViT-B/16 geometry with random weights (no download needed).
 *
 *   npm run bench:speed -- [--model vit_base_patch16_224] [--backend auto] [--repeats 3] [--method rollout ...]
 *
 * Reports the median over --repeats timed runs after one warm-up run, and the process's peak RSS.
 * Speed targets live here, not in the test suite.
 */
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../src/engine/backend.js';
import type { StateDict } from '../src/formats/host-tensor.js';
import { explain } from '../src/methods/explain.js';
import { METHODS, resolveMethods } from '../src/methods/registry.js';
import { VisionTransformer } from '../src/models/vit.js';
import { vitPreset } from '../src/models/vit-config.js';
import { expectedVitKeys, vitWeightsFromStateDict } from '../src/models/vit-weights.js';

const args = await yargs(hideBin(process.argv))
  .option('model', { type: 'string', default: 'vit_base_patch16_224' })
  .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
  .option('repeats', { type: 'number', default: 3 })
  .option('method', { type: 'string', array: true, describe: 'methods to time alone (default: all six)' })
  .option('skip-alone', {
    type: 'boolean',
    default: false,
    describe: 'only time the forward pass and the six-method sweep',
  })
  .strict()
  .parseAsync();

const backend = await initBackend(args.backend);
const cfg = vitPreset(args.model);

/** Deterministic pseudo-random weights with roughly trained-model scales (LayerNorm gains near 1). */
function randomStateDict(): StateDict {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const sd: StateDict = new Map();
  for (const [k, shape] of expectedVitKeys(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormGain = /norm\d?\.weight$/.test(k);
    const scale = k.endsWith('.bias') ? 0.02 : isNormGain ? 0.1 : 0.07;
    for (let i = 0; i < n; i++) data[i] = (isNormGain ? 1 : 0) + scale * rand();
    sd.set(k, { shape, data });
  }
  return sd;
}

const model = new VisionTransformer(cfg, vitWeightsFromStateDict(randomStateDict(), cfg, '(random weights)'));
const input = tf.randomUniform([1, cfg.in_chans, cfg.img_size, cfg.img_size], -1, 1, 'float32', 7) as tf.Tensor4D;

function time(run: () => void): number {
  run(); // warm-up: weight packing, sign splits, kernel caches
  const t: number[] = [];
  for (let i = 0; i < args.repeats; i++) {
    const t0 = performance.now();
    run();
    t.push((performance.now() - t0) / 1000);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

console.log(
  `backend: ${backend.description}; model ${cfg.name} (random weights); median of ${args.repeats} runs after 1 warm-up`,
);
const rows: [string, number][] = [];
rows.push([
  'forward',
  time(() => tf.tidy(() => model.head(model.forward(input), cfg.final_norm_eps).logits.dataSync())),
]);
if (!args['skip-alone']) {
  for (const m of args.method ? resolveMethods(args.method) : METHODS) {
    rows.push([m.name, time(() => explain(model, input, [m]))]);
    console.log(`  ${m.name.padEnd(26)} ${rows.at(-1)![1].toFixed(2)} s/image`);
  }
}
rows.push(['all six together', time(() => explain(model, input, METHODS))]);
console.log('\n| what | seconds / image |\n|---|---|');
for (const [name, s] of rows) console.log(`| ${name} | ${s.toFixed(2)} |`);
console.log(
  `\npeak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; tf tensors alive ${tf.memory().numTensors}`,
);
