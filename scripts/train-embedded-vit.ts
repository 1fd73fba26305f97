/**
 * Trains the small ViT that ships as the embedded default model (embedded/models/vit-shapes/), on the
 * synthetic shapes task (src/datasets/synthetic-shapes.ts): classify the stripe colour of the one striped
 * object among smooth clutter. Real 224/16 geometry, few and narrow blocks. Training uses the same model code
 * that the explanation methods use (gradients by tf.grad through VisionTransformer.forward), TF.js only.
 *
 *   node --import tsx scripts/train-embedded-vit.ts [--steps 1200] [--batch 16] [--out embedded/models/vit-shapes]
 *
 * Deterministic given its options (seeded init and data; one thread). Writes config.json,
 * weights.safetensors and training.json (options, loss/accuracy log, held-out accuracy).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { toModelInput } from '../src/data/image.js';
import { renderShapeSample, SHAPE_CLASSES } from '../src/datasets/synthetic-shapes.js';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../src/engine/backend.js';
import { setSplitBatchedMatmul, setTrainingMode } from '../src/engine/ops.js';
import type { StateDict } from '../src/formats/host-tensor.js';
import { encodeSafetensors } from '../src/formats/safetensors.js';
import { VisionTransformer } from '../src/models/vit.js';
import { parseVitConfig, type VitConfig } from '../src/models/vit-config.js';
import { buildVitWeights, expectedVitKeys } from '../src/models/vit-weights.js';
import { Rng } from '../src/util/random.js';

const args = await yargs(hideBin(process.argv))
  .option('steps', { type: 'number', default: 600 })
  .option('batch', { type: 'number', default: 16 })
  .option('lr', { type: 'number', default: 1e-3 })
  .option('seed', { type: 'number', default: 1 })
  .option('embed-dim', { type: 'number', default: 48 })
  .option('depth', { type: 'number', default: 3 })
  .option('heads', { type: 'number', default: 3 })
  .option('eval-every', { type: 'number', default: 100 })
  .option('removal-augment', {
    type: 'number',
    default: 0.5,
    describe:
      'probability that a training image has a random 0–90 % of its pixels set to black, as the perturbation test does',
  })
  .option('out', { type: 'string', default: 'embedded/models/vit-shapes' })
  .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
  .strict()
  .parseAsync();

const backend = await initBackend(args.backend);
setSplitBatchedMatmul(false);
setTrainingMode(true); // training batches are large; plain batched matmuls are cheaper here than per-slice ones

const cfg: VitConfig = parseVitConfig(
  {
    name: 'vit_shapes_tiny',
    img_size: 224,
    patch_size: 16,
    in_chans: 3,
    embed_dim: args['embed-dim'],
    depth: args.depth,
    num_heads: args.heads,
    mlp_ratio: 2,
    qkv_bias: true,
    num_classes: SHAPE_CLASSES.length,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  },
  'embedded config',
);

// timm-like initialisation: N(0, 0.02) weights, zero biases, LayerNorm 1/0.
const rng = new Rng(args.seed);
const vars = new Map<string, tf.Variable>();
for (const [k, shape] of expectedVitKeys(cfg)) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (/norm\d?\.weight$/.test(k)) data.fill(1);
  else if (!k.endsWith('.bias')) for (let i = 0; i < n; i++) data[i] = 0.02 * rng.normal();
  vars.set(k, tf.variable(tf.tensor(data, shape), true, k));
}

function stateDict(): StateDict {
  const sd: StateDict = new Map();
  for (const [k, v] of vars) sd.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
  return sd;
}

/** The model over the live variables (weight views are rebuilt inside each gradient scope, so gradients reach them). */
function modelFromVariables(): VisionTransformer {
  return new VisionTransformer(
    cfg,
    buildVitWeights(cfg, (k, shape) => tf.reshape(vars.get(k)!, shape)),
  );
}

/**
 * Pixel-removal augmentation: the perturbation test blackens pixels (0 in [0, 1] space) and asks whether the
 * decision survives; a model that never saw black pixels fails on any removal, which would make the embedded
 * perturbation numbers meaningless. So some training images get a random share of their pixels removed.
 */
function removePixels(x: Float32Array, rng: Rng): void {
  const hw = 224 * 224;
  const fraction = rng.uniform(0, 0.9);
  // Half the time scattered pixels, half the time whole 16×16 patches: relevance maps are smooth at the patch
  // scale, so the test removes contiguous regions.
  const byPatch = rng.next() < 0.5;
  const patchOff = new Uint8Array(196);
  if (byPatch) for (let q = 0; q < 196; q++) patchOff[q] = rng.next() < fraction ? 1 : 0;
  for (let p = 0; p < hw; p++) {
    const off = byPatch ? patchOff[((p / 224 / 16) | 0) * 14 + (((p % 224) / 16) | 0)] === 1 : rng.next() < fraction;
    if (!off) continue;
    for (let c = 0; c < 3; c++) x[c * hw + p] = (0 - cfg.mean[c]!) / cfg.std[c]!;
  }
}

function batch(seed0: number, size: number, augment = 0): { x: tf.Tensor4D; y: tf.Tensor1D; labels: number[] } {
  const xs = new Float32Array(size * 3 * 224 * 224);
  const labels: number[] = [];
  const aug = new Rng(seed0 + 1);
  for (let i = 0; i < size; i++) {
    const s = renderShapeSample(seed0 + i, 224, 224);
    const x = toModelInput(s.image, { height: 224, width: 224 }, cfg.mean, cfg.std);
    if (aug.next() < augment) removePixels(x, aug);
    xs.set(x, i * 3 * 224 * 224);
    labels.push(s.label);
  }
  return { x: tf.tensor4d(xs, [size, 3, 224, 224]), y: tf.tensor1d(labels, 'int32'), labels };
}

const heldOut = Array.from({ length: 4 }, (_, i) => batch(10_000_000 + i * 32, 32));

function evaluate(): number {
  let correct = 0;
  let total = 0;
  for (const b of heldOut) {
    const pred = tf.tidy(() => {
      const m = modelFromVariables();
      return tf.argMax(m.head(m.forward(b.x), cfg.final_norm_eps).logits, 1).dataSync();
    });
    pred.forEach((p, i) => {
      correct += p === b.labels[i] ? 1 : 0;
      total++;
    });
  }
  return correct / total;
}

const optimizer = tf.train.adam(args.lr);
const log: { step: number; loss: number; heldOutAccuracy?: number; seconds: number }[] = [];
const t0 = performance.now();
console.log(
  `backend ${backend.description}; ${cfg.depth} blocks, D=${cfg.embed_dim}, ${cfg.num_heads} heads; ${args.steps} steps of ${args.batch}`,
);
for (let step = 1; step <= args.steps; step++) {
  const { x, y } = batch(step * args.batch, args.batch, args['removal-augment']);
  // Linear warm-up over the first 100 steps, then cosine decay to 5% of the peak.
  const warm = Math.min(1, step / 100);
  const cosine = 0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * step) / args.steps));
  (optimizer as unknown as { learningRate: number }).learningRate = args.lr * warm * cosine;
  const loss = optimizer.minimize(
    () => {
      const m = modelFromVariables();
      const logits = m.head(m.forward(x), cfg.final_norm_eps).logits;
      return tf.losses.softmaxCrossEntropy(tf.oneHot(y, cfg.num_classes), logits) as tf.Scalar;
    },
    true,
    [...vars.values()],
  );
  const l = loss!.dataSync()[0]!;
  tf.dispose([x, y, loss!]);
  const entry: (typeof log)[number] = { step, loss: l, seconds: (performance.now() - t0) / 1000 };
  if (step % args['eval-every'] === 0 || step === args.steps) entry.heldOutAccuracy = evaluate();
  log.push(entry);
  if (step % 10 === 0 || entry.heldOutAccuracy !== undefined) {
    console.log(
      `step ${step} loss ${l.toFixed(4)}${entry.heldOutAccuracy !== undefined ? ` held-out acc ${(100 * entry.heldOutAccuracy).toFixed(1)}%` : ''} (${entry.seconds.toFixed(0)} s)`,
    );
  }
}

mkdirSync(args.out, { recursive: true });
const { name, ...rest } = cfg;
writeFileSync(join(args.out, 'config.json'), `${JSON.stringify({ name, ...rest, classes: SHAPE_CLASSES }, null, 2)}\n`);
const final = log.at(-1)!;
writeFileSync(
  join(args.out, 'weights.safetensors'),
  encodeSafetensors(stateDict(), {
    format: 'pt',
    trained_by: 'scripts/train-embedded-vit.ts',
    steps: String(args.steps),
    held_out_accuracy: String(final.heldOutAccuracy),
  }),
);
writeFileSync(
  join(args.out, 'training.json'),
  `${JSON.stringify({ script: 'scripts/train-embedded-vit.ts', options: args, backend: backend.name, classes: SHAPE_CLASSES, heldOutAccuracy: final.heldOutAccuracy, log }, null, 1)}\n`,
);
console.log(`wrote ${args.out}: held-out accuracy ${(100 * final.heldOutAccuracy!).toFixed(1)}%`);
