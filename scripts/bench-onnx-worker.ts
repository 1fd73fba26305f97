/**
 * One wasm worker of `npm run bench:onnx` (see bench-onnx.ts): the ViT with deterministic random weights on the
 * wasm backend, running the perturbation test's classifier pass (`VisionTransformer.logits`, as
 * src/benchmarks/perturbation.ts does) on the images it is handed, in batches.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend.js';
import { serveWorker } from '../src/engine/worker-pool.js';
import { VisionTransformer } from '../src/models/vit.js';
import { vitPreset } from '../src/models/vit-config.js';
import { vitWeightsFromStateDict } from '../src/models/vit-weights.js';
import { randomStateDict } from './random-vit-weights.js';

export interface OnnxBenchSetup {
  model: string;
}

export interface OnnxBenchTask {
  /** Normalised images [n, C, H, W]. */
  images: Float32Array;
  n: number;
  batch: number;
}

export interface OnnxBenchResult {
  logits: Float32Array;
  /** Seconds inside the worker. */
  seconds: number;
  backend: string;
}

serveWorker<OnnxBenchSetup, OnnxBenchTask, OnnxBenchResult>(async (setup) => {
  const backend = await initBackend('wasm');
  const cfg = vitPreset(setup.model);
  const model = new VisionTransformer(cfg, vitWeightsFromStateDict(randomStateDict(cfg), cfg, '(random weights)'));
  const plane = cfg.in_chans * cfg.img_size * cfg.img_size;
  return async (task) => {
    const t0 = performance.now();
    const out = new Float32Array(task.n * cfg.num_classes);
    for (let i = 0; i < task.n; i += task.batch) {
      const b = Math.min(task.batch, task.n - i);
      const x = task.images.subarray(i * plane, (i + b) * plane);
      const logits = tf.tidy(() =>
        model.logits(tf.tensor4d(x, [b, cfg.in_chans, cfg.img_size, cfg.img_size]), cfg.final_norm_eps),
      );
      out.set((await logits.data()) as Float32Array, i * cfg.num_classes);
      logits.dispose();
    }
    return { logits: out, seconds: (performance.now() - t0) / 1000, backend: backend.description };
  };
});
