/**
 * One worker of `npm run bench:speed` (see bench-speed.ts): loads the ViT with deterministic random
 * weights on its own backend, then times tasks on deterministic random images.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { perturbationClassifier } from '../src/benchmarks/perturbation.js';
import { perturbBatch } from '../src/benchmarks/perturbation-core.js';
import { normalizeCHW } from '../src/data/image.js';
import { type BackendChoice, initBackend } from '../src/engine/backend.js';
import { serveWorker } from '../src/engine/worker-pool.js';
import { explain } from '../src/methods/explain.js';
import { resolveMethods } from '../src/methods/registry.js';
import { VisionTransformer } from '../src/models/vit.js';
import { vitPreset } from '../src/models/vit-config.js';
import { vitWeightsFromStateDict } from '../src/models/vit-weights.js';
import { randomStateDict } from './random-vit-weights.js';

export interface SpeedSetup {
  model: string;
  backend: BackendChoice;
  /**
   * Move every input value by one float32 ulp (the last mantissa bit flipped): a change of the size of float32
   * rounding, to measure how far a method's maps move under float32 noise alone (bench:speed --jitter-input).
   */
  jitterInput?: boolean;
}

/** `a` with the last mantissa bit of every value flipped (one ulp away), in place. */
export function flipLastBit(a: Float32Array): Float32Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < bits.length; i++) bits[i]! ^= 1;
  return a;
}

/**
 * 'forward': the forward pass and the classifier logits; 'perturb': the perturbation test (both settings, one
 * shared unperturbed pass) of images image … image + count − 1 in batches of `batchSize`, on deterministic
 * pseudo-random maps (the test's cost does not depend on the map's values); otherwise explain() with these methods.
 */
export interface SpeedTask {
  methods: string[] | 'forward' | 'perturb';
  image: number;
  count?: number;
  batchSize?: number;
  /** 'perturb': what runs the classifier passes (as `bench perturb --classifier-engine`); default tfjs. */
  engine?: 'tfjs' | 'onnxruntime';
  /** Return the logits and the maps (bench:speed --save-maps, --compare-maps). */
  keepMaps?: boolean;
}

/** The numbers of one explained image, when the task asks for them. */
export interface SpeedMaps {
  logits: Float32Array;
  methods: { method: string; raw: Float32Array; rawShape: number[]; map: Float32Array; mapShape: number[] }[];
}

export interface SpeedResult {
  /** Seconds inside the worker for this image. */
  seconds: number;
  /** SHA-256 of every number the task produced (logits, raw and final maps), to compare runs. */
  digest: string;
  backend: string;
  /** The backend line (on webgpu, the adapter). */
  description: string;
  maps?: SpeedMaps;
  /** Size of the wasm heap after the task (it only grows; 0 on other backends). */
  heapMiB: number;
  tensors: number;
}

/** Deterministic pseudo-random values in [0, 1) (host side: the webgpu backend cannot read synchronously). */
function fillUniform(a: Float32Array, seed: number): void {
  let x = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    a[i] = x / 2 ** 32;
  }
}

serveWorker<SpeedSetup, SpeedTask, SpeedResult>(async (setup) => {
  const backend = await initBackend(setup.backend);
  const cfg = vitPreset(setup.model);
  const model = new VisionTransformer(cfg, vitWeightsFromStateDict(randomStateDict(cfg), cfg, '(random weights)'));
  const shape: [number, number, number, number] = [1, cfg.in_chans, cfg.img_size, cfg.img_size];
  // biome-ignore lint/suspicious/noExplicitAny: the wasm backend's heap is not in tfjs' public types
  const heap = () => ((tf.backend() as any).wasm?.HEAPU8?.buffer?.byteLength ?? 0) / 2 ** 20;
  const classifiers = {
    tfjs: perturbationClassifier(model, 'tfjs'),
    onnxruntime: perturbationClassifier(model, 'onnxruntime'),
  };
  const normalize = (chw: Float32Array) => normalizeCHW(chw, cfg.mean, cfg.std);
  /**
   * As `bench perturb` runs one batch: the unperturbed pass once, then both settings' steps. Returns one digest per
   * image (comma-separated), so that runs that split the images differently compare equal.
   */
  const perturbImages = async (task: SpeedTask): Promise<string> => {
    const digests: string[] = [];
    const classify = classifiers[task.engine ?? 'tfjs'];
    const count = task.count ?? 1;
    const batchSize = task.batchSize ?? count;
    const plane = cfg.img_size * cfg.img_size;
    for (let start = 0; start < count; start += batchSize) {
      const b = Math.min(batchSize, count - start);
      const images = new Float32Array(b * cfg.in_chans * plane);
      const vis = new Float32Array(b * plane);
      const labels: number[] = [];
      for (let i = 0; i < b; i++) {
        const k = task.image + start + i;
        fillUniform(images.subarray(i * cfg.in_chans * plane, (i + 1) * cfg.in_chans * plane), 1000 + k);
        fillUniform(vis.subarray(i * plane, (i + 1) * plane), 2000 + k);
        labels.push(k % cfg.num_classes);
      }
      const input = new Float32Array(images.length);
      const size = cfg.in_chans * plane;
      for (let i = 0; i < b; i++) input.set(normalize(images.subarray(i * size, (i + 1) * size)), i * size);
      const cleanLogits = await classify(input, b);
      const perImage = Array.from({ length: b }, () => createHash('sha256'));
      for (const negative of [false, true]) {
        const results = await perturbBatch(images, vis, { negative, classify, normalize, labels, cleanLogits });
        results.forEach((r, i) => {
          const a = Float32Array.from(r.steps.map((s) => (s.hit ? 1 : 0) + s.logitDiff));
          perImage[i]!.update(new Uint8Array(a.buffer));
        });
      }
      digests.push(...perImage.map((h) => h.digest('hex')));
    }
    return digests.join(',');
  };
  return async (task) => {
    let input = tf.randomUniform(shape, -1, 1, 'float32', 7 + task.image) as tf.Tensor4D;
    if (setup.jitterInput) {
      const jittered = tf.tensor4d(flipLastBit(Float32Array.from(await input.data())), shape);
      input.dispose();
      input = jittered;
    }
    const hash = createHash('sha256');
    const add = (a: Float32Array) => hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const t0 = performance.now();
    let digest: string | undefined;
    let maps: SpeedMaps | undefined;
    if (task.methods === 'perturb') {
      digest = await perturbImages(task);
    } else if (task.methods === 'forward') {
      // Read asynchronously: the webgpu backend cannot read a GPU buffer synchronously in Node.
      const logits = tf.tidy(() => model.head(model.forward(input), cfg.final_norm_eps).logits);
      add((await logits.data()) as Float32Array);
      logits.dispose();
    } else {
      const ex = await explain(model, input, resolveMethods(task.methods));
      for (const l of ex.logits) add(l);
      for (const m of ex.methods) for (const a of [...m.raw, ...m.map]) add(a);
      if (task.keepMaps) {
        maps = {
          logits: ex.logits[0]!,
          methods: ex.methods.map((m) => ({
            method: m.method,
            raw: m.raw[0]!,
            rawShape: m.rawShape,
            map: m.map[0]!,
            mapShape: m.mapShape,
          })),
        };
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    input.dispose();
    return {
      seconds,
      digest: digest ?? hash.digest('hex'),
      backend: backend.name,
      description: backend.description,
      ...(maps ? { maps } : {}),
      heapMiB: heap(),
      tensors: tf.memory().numTensors,
    };
  };
});
