import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { BackendChoice } from './backend-choice.js';
import { configureOps } from './ops.js';
import { applyPlatformFixes } from './platform-fixes.js';
import * as tf from './tf.js';
import { describeAdapter, findAdapter, type GpuAdapterSummary, startWebgpuBackend } from './webgpu.js';

/**
 * Backend selection. The native packages (@tensorflow/tfjs-node[-gpu]) are optional dependencies whose
 * install script downloads libtensorflow; where that fails the package is absent or installed without its
 * addon. We look for the addon file before importing, because a failed import registers ~150 kernels and
 * a second attempt floods stderr (docs/architecture.md, "TensorFlow.js on Node").
 */
export { BACKEND_CHOICES, type BackendChoice } from './backend-choice.js';

const require = createRequire(import.meta.url);
// Registers the wasm backend. With require(), like TensorFlow.js itself in tf.ts: an ES import of this
// CommonJS bundle would first scan it for export names, which costs more than loading it.
require('@tensorflow/tfjs-backend-wasm');

function nativeAddonPresent(pkg: string): boolean {
  let root: string;
  try {
    root = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return false;
  }
  const lib = join(root, 'lib');
  if (!existsSync(lib)) return false;
  return readdirSync(lib).some((d) => existsSync(join(lib, d, 'tfjs_binding.node')));
}

async function tryNative(pkg: string): Promise<boolean> {
  if (!nativeAddonPresent(pkg)) return false;
  try {
    require(pkg);
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

export interface BackendInfo {
  /** tfjs backend name actually in use: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  /** Human-readable description, e.g. "tensorflow (native GPU)". */
  description: string;
  /** The GPU adapter, on webgpu. */
  adapter?: GpuAdapterSummary;
}

/**
 * Whether a hardware GPU could be behind WebGPU here: a GPU device node, or a Vulkan driver manifest that is not
 * Mesa's software one. `auto` probes Dawn only then, so that a machine with no GPU pays nothing for it.
 */
function hardwareGpuLikely(): boolean {
  if (process.platform !== 'linux') return process.platform === 'darwin' || process.platform === 'win32';
  const devices = ['/dev/nvidia0', '/dev/dri'].some((p) => existsSync(p));
  const icds = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d']
    .filter((d) => existsSync(d))
    .flatMap((d) => readdirSync(d))
    .filter((f) => !/^lvp_icd/.test(f));
  return devices && icds.length > 0;
}

/** The webgpu backend, when an adapter is found (a software one only when asked for by name). */
async function tryWebgpu(explicit: boolean): Promise<{ ok: boolean; adapter?: GpuAdapterSummary }> {
  if (!explicit && !hardwareGpuLikely()) return { ok: false };
  let adapter: GpuAdapterSummary;
  try {
    adapter = await findAdapter();
  } catch (e) {
    if (explicit) throw e;
    return { ok: false };
  }
  if (adapter.software && !explicit) return { ok: false };
  return { ok: await startWebgpuBackend(), adapter };
}

let active: BackendInfo | undefined;

let queue: Promise<unknown> = Promise.resolve();

/**
 * Select and initialise the backend (once per process; later calls reuse it). Concurrent callers are
 * serialised: two overlapping initialisations could otherwise leave a slower backend active.
 */
export function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  const next = queue.then(() => selectBackend(choice));
  queue = next.catch(() => undefined);
  return next;
}

async function selectBackend(choice: BackendChoice): Promise<BackendInfo> {
  if (active && (choice === 'auto' || active.name === choice)) return active;
  tf.env().set('IS_TEST', false);
  tf.env().set('PROD', true);
  const order: string[] =
    choice === 'auto'
      ? ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu']
      : choice === 'tensorflow'
        ? ['tensorflow-gpu', 'tensorflow']
        : [choice];
  for (const b of order) {
    let ok = false;
    let description = b;
    let adapter: GpuAdapterSummary | undefined;
    if (b === 'webgpu') {
      ({ ok, adapter } = await tryWebgpu(choice === 'webgpu'));
      if (adapter) description = describeAdapter(adapter);
    } else if (b === 'tensorflow-gpu') {
      ok = await tryNative('@tensorflow/tfjs-node-gpu');
      description = 'tensorflow (native, GPU package)';
    } else if (b === 'tensorflow') {
      ok = await tryNative('@tensorflow/tfjs-node');
      description = 'tensorflow (native CPU)';
    } else {
      try {
        ok = await tf.setBackend(b);
        if (ok) await tf.ready();
      } catch {
        ok = false;
      }
      description = b === 'wasm' ? 'wasm (XNNPACK, SIMD, 1 thread)' : 'cpu (pure JavaScript)';
    }
    if (ok) {
      applyPlatformFixes(tf.getBackend());
      configureOps(tf.getBackend());
      active = { name: tf.getBackend(), description, ...(adapter ? { adapter } : {}) };
      return active;
    }
  }
  if (choice === 'tensorflow') {
    throw new Error(
      "backend 'tensorflow' is not available: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node has its native addon installed (their install script downloads libtensorflow, which needs internet access). Use --backend wasm or cpu.",
    );
  }
  throw new Error(`backend '${choice}' could not be initialised`);
}

export function activeBackend(): BackendInfo {
  if (!active) throw new Error('initBackend() has not been called');
  return active;
}

/** The chosen backend's name, or undefined before initBackend() (nothing to check against yet). */
export function activeBackendName(): string | undefined {
  return active?.name;
}

/** The GPU adapter's buffer limits, when the webgpu backend is active. */
export function activeGpuLimits(): { maxStorageBufferBindingSize: number; maxBufferSize: number } | undefined {
  return active?.name === 'webgpu' ? active.adapter : undefined;
}
