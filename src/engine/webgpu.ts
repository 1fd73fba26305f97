import { createRequire } from 'node:module';
import * as tf from './tf.js';

/**
 * The WebGPU route: Dawn's Node bindings (npm package `webgpu`, with the prebuilt dawn.node in its tarball) give
 * Node a `navigator.gpu`, on which TensorFlow.js's webgpu backend (@tensorflow/tfjs-backend-webgpu) runs. Both
 * packages are optional dependencies. Dawn needs a Vulkan driver (Linux): the GPU vendor's, or Mesa's software
 * rasteriser lavapipe (scripts/setup-lavapipe.sh), which is a correctness device, not a fast one.
 */

export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU (software) adapter such as lavapipe/llvmpipe or SwiftShader. */
  software: boolean;
  /** The largest storage buffer one binding may see, and the largest buffer (bytes). */
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** Why the webgpu backend could not start, in one line with the way out. */
export class WebGpuUnavailableError extends Error {
  override name = 'WebGpuUnavailableError';
}

const require = createRequire(import.meta.url);

interface AdapterLike {
  info?: Record<string, unknown>;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
  isFallbackAdapter?: boolean;
}

let adapterSummary: GpuAdapterSummary | undefined;

/** Limits to test the refusal with, in place of the adapter's (BENCH_WEBGPU_FAKE_LIMIT=bytes sets both). */
function fakeLimit(): number | undefined {
  const v = process.env.BENCH_WEBGPU_FAKE_LIMIT;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new WebGpuUnavailableError(`BENCH_WEBGPU_FAKE_LIMIT=${v}: not a byte count`);
  return n;
}

/**
 * Finds a WebGPU adapter through Dawn (once per process) and describes it. Throws WebGpuUnavailableError when the
 * package is missing or no adapter is found.
 */
export async function findAdapter(): Promise<GpuAdapterSummary> {
  if (adapterSummary) return adapterSummary;
  let dawn: { create: (flags: string[]) => { requestAdapter: () => Promise<AdapterLike | null> }; globals: object };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch (e) {
    throw new WebGpuUnavailableError(
      `backend 'webgpu' is not available: the optional package 'webgpu' (Dawn's Node bindings) did not load (${(e as Error).message.split('\n')[0]}); run npm install`,
    );
  }
  const gpu = dawn.create([]);
  let adapter: AdapterLike | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    adapter = null;
  }
  if (!adapter)
    throw new WebGpuUnavailableError(
      "backend 'webgpu' is not available: Dawn found no GPU adapter. It needs a Vulkan driver: your GPU's (NVIDIA, AMD, Intel), or Mesa's software lavapipe (scripts/setup-lavapipe.sh on Debian bookworm)",
    );
  // TensorFlow.js looks for navigator.gpu and the WebGPU constants (GPUBufferUsage, …) as globals.
  Object.assign(globalThis, dawn.globals);
  if (!('navigator' in globalThis) || !(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu)
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const info = adapter.info ?? {};
  const str = (k: string) => String(info[k] ?? '');
  const architecture = str('architecture');
  const description = str('description');
  const fake = fakeLimit();
  adapterSummary = {
    vendor: str('vendor'),
    architecture,
    device: str('device'),
    description,
    software:
      adapter.isFallbackAdapter === true ||
      architecture === 'software' ||
      /llvmpipe|lavapipe|swiftshader/i.test(`${description} ${str('device')}`),
    maxStorageBufferBindingSize: fake ?? adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: fake ?? adapter.limits.maxBufferSize,
  };
  return adapterSummary;
}

/** The adapter in use, once the webgpu backend has started. */
export function webgpuAdapter(): GpuAdapterSummary | undefined {
  return adapterSummary;
}

/** Registers and selects TensorFlow.js's webgpu backend on the adapter findAdapter() found. */
export async function startWebgpuBackend(): Promise<boolean> {
  require('@tensorflow/tfjs-backend-webgpu');
  const ok = await tf.setBackend('webgpu');
  if (ok) await tf.ready();
  return ok;
}

export function describeAdapter(a: GpuAdapterSummary): string {
  const name = [
    a.description || a.device,
    a.vendor && `vendor ${a.vendor}`,
    a.architecture && `architecture ${a.architecture}`,
  ]
    .filter(Boolean)
    .join(', ');
  return `webgpu (${name}${a.software ? '; a software adapter: results are right, speed is not a GPU’s' : ''})`;
}
