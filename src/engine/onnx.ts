/**
 * onnxruntime-node (CPU) as the engine of the perturbation test's classifier pass (`bench perturb
 * --classifier-engine`). It is an optional dependency, loaded on demand; its install script (which fetches CUDA
 * parts from outside the npm registry) is not run, and the CPU build in its npm tarball needs none.
 *
 * Measured (results/speed/README.md, 2026-12-02): the ViT-B/16 forward 3.7× (1 thread) and 3.0× (2 threads) faster
 * than the wasm backend per image, with the same top-1 decisions on every golden perturbation case.
 */
import { createRequire } from 'node:module';
import type { StateDict } from '../formats/host-tensor.js';
import { vitOnnxModel } from '../models/onnx-vit.js';
import type { VisionTransformer } from '../models/vit.js';
import type { VitConfig } from '../models/vit-config.js';
import { expectedVitKeys } from '../models/vit-weights.js';
import { holdNative, runNative } from './native-work.js';

export const ORT_VERSION = '1.30.0';
export const ORT_INSTALL_HINT = `npm install --no-save --ignore-scripts onnxruntime-node@${ORT_VERSION}`;

/** The parts of onnxruntime-node used here (an optional dependency: no type import). */
export interface OrtTensor {
  data: Float32Array;
  dims: readonly number[];
}
export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSession> };
  env: { versions: { node: string } };
}

let cached: { ort?: Ort; error?: string } | undefined;

/** onnxruntime-node, or why it cannot be used (one line). */
export function loadOnnxRuntime(): { ort?: Ort; error?: string } {
  if (!cached) {
    try {
      cached = { ort: createRequire(import.meta.url)('onnxruntime-node') as Ort };
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'is not installed' : 'does not load';
      cached = {
        error: `onnxruntime-node ${why}; install it without its install script (which fetches CUDA parts): ${ORT_INSTALL_HINT}`,
      };
    }
  }
  return cached;
}

/**
 * A session on `threads` intra-op threads. Its runs are tracked and the session is registered for release
 * (native-work.ts), so that a worker thread holding it can end without aborting the process.
 */
export async function ortSession(ort: Ort, model: Uint8Array, threads: number): Promise<OrtSession> {
  const session = await runNative(() =>
    ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    }),
  );
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await session.release();
  };
  holdNative(release);
  return { run: (feeds) => runNative(() => session.run(feeds)), release };
}

/** The state dict (timm names) of a loaded model, read back from its tensors. */
export function vitStateDict(model: VisionTransformer): StateDict {
  const c = model.config;
  const w = model.weights;
  const sd: StateDict = new Map();
  const keys = expectedVitKeys(c);
  const put = (k: string, t: { dataSync(): unknown }) => {
    sd.set(k, { shape: keys.get(k)!, data: Float32Array.from(t.dataSync() as Float32Array) });
  };
  put('cls_token', w.clsToken);
  put('pos_embed', w.posEmbed);
  put('patch_embed.proj.weight', w.patchEmbed.W);
  put('patch_embed.proj.bias', w.patchEmbed.b!);
  w.blocks.forEach((b, i) => {
    const p = `blocks.${i}.`;
    put(`${p}norm1.weight`, b.norm1.gamma);
    put(`${p}norm1.bias`, b.norm1.beta);
    put(`${p}attn.qkv.weight`, b.qkv.W);
    if (b.qkv.b) put(`${p}attn.qkv.bias`, b.qkv.b);
    put(`${p}attn.proj.weight`, b.proj.W);
    put(`${p}attn.proj.bias`, b.proj.b!);
    put(`${p}norm2.weight`, b.norm2.gamma);
    put(`${p}norm2.bias`, b.norm2.beta);
    put(`${p}mlp.fc1.weight`, b.fc1.W);
    put(`${p}mlp.fc1.bias`, b.fc1.b!);
    put(`${p}mlp.fc2.weight`, b.fc2.W);
    put(`${p}mlp.fc2.bias`, b.fc2.b!);
  });
  put('norm.weight', w.norm.gamma);
  put('norm.bias', w.norm.beta);
  put('head.weight', w.head.W);
  put('head.bias', w.head.b!);
  return sd;
}

/**
 * The classifier of `config` with weights `sd` on onnxruntime (one intra-op thread: parallelism comes from
 * `--workers`): normalised batch [B, C, H, W] → logits [B, classes], the `final_norm_eps` head as
 * `VisionTransformer.logits`.
 */
export async function onnxVitClassifier(
  ort: Ort,
  config: VitConfig,
  sd: StateDict,
  threads = 1,
): Promise<(batch: Float32Array, b: number) => Promise<Float32Array>> {
  const session = await ortSession(ort, vitOnnxModel(config, sd), threads);
  const c = config;
  return async (batch, b) => {
    const x = new ort.Tensor('float32', batch, [b, c.in_chans, c.img_size, c.img_size]);
    return (await session.run({ input: x })).logits!.data;
  };
}

/** The onnxruntime classifier of a loaded model (its weights read back), or an Error naming how to install it. */
export async function onnxClassifierFor(
  model: VisionTransformer,
): Promise<(batch: Float32Array, b: number) => Promise<Float32Array>> {
  const { ort, error } = loadOnnxRuntime();
  if (!ort) throw new Error(error);
  return onnxVitClassifier(ort, model.config, vitStateDict(model));
}
