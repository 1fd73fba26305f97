/**
 * One worker of `npm run bench:speed` (see bench-speed.ts): loads the ViT with deterministic random
 * weights on its own backend, then times tasks on deterministic random images.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
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
}

/** 'forward': the forward pass and the classifier logits; otherwise explain() with these methods. */
export interface SpeedTask {
  methods: string[] | 'forward';
  image: number;
}

export interface SpeedResult {
  /** Seconds inside the worker for this image. */
  seconds: number;
  /** SHA-256 of every number the task produced (logits, raw and final maps), to compare runs. */
  digest: string;
  backend: string;
  /** Size of the wasm heap after the task (it only grows; 0 on other backends). */
  heapMiB: number;
  tensors: number;
}

serveWorker<SpeedSetup, SpeedTask, SpeedResult>(async (setup) => {
  const backend = await initBackend(setup.backend);
  const cfg = vitPreset(setup.model);
  const model = new VisionTransformer(cfg, vitWeightsFromStateDict(randomStateDict(cfg), cfg, '(random weights)'));
  const shape: [number, number, number, number] = [1, cfg.in_chans, cfg.img_size, cfg.img_size];
  // biome-ignore lint/suspicious/noExplicitAny: the wasm backend's heap is not in tfjs' public types
  const heap = () => ((tf.backend() as any).wasm?.HEAPU8?.buffer?.byteLength ?? 0) / 2 ** 20;
  return async (task) => {
    const input = tf.randomUniform(shape, -1, 1, 'float32', 7 + task.image) as tf.Tensor4D;
    const hash = createHash('sha256');
    const add = (a: Float32Array) => hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const t0 = performance.now();
    if (task.methods === 'forward') {
      // Read asynchronously: the webgpu backend cannot read a GPU buffer synchronously in Node.
      const logits = tf.tidy(() => model.head(model.forward(input), cfg.final_norm_eps).logits);
      add((await logits.data()) as Float32Array);
      logits.dispose();
    } else {
      const ex = await explain(model, input, resolveMethods(task.methods));
      for (const l of ex.logits) add(l);
      for (const m of ex.methods) for (const a of [...m.raw, ...m.map]) add(a);
    }
    const seconds = (performance.now() - t0) / 1000;
    input.dispose();
    return {
      seconds,
      digest: hash.digest('hex'),
      backend: backend.name,
      heapMiB: heap(),
      tensors: tf.memory().numTensors,
    };
  };
});
