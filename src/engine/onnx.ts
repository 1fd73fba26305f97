/**
 * onnxruntime-node (CPU) as the engine of the perturbation test's classifier pass (`bench perturb
 * --classifier-engine`). It is an optional dependency, loaded on demand; its install script (which fetches CUDA
 * parts from outside the npm registry) is not run, and the CPU build in its npm tarball needs none.
 *
 * Measured (results/speed/README.md, 2026-12-02): the ViT-B/16 forward 3.7× (1 thread) and 3.0× (2 threads) faster
 * than the wasm backend per image, with the same top-1 decisions on every golden perturbation case.
 */
import { createRequire } from 'node:module';
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
