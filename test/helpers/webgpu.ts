import { findAdapter, WebGpuUnavailableError } from '../../src/engine/webgpu.js';

/**
 * Whether the webgpu tests can run here: false when a WebGPU adapter is found (a GPU's Vulkan driver, or lavapipe
 * from scripts/setup-lavapipe.sh), else the skip reason, printed once with how to enable them. Under CI=true a
 * missing adapter is an error (.ci/run installs lavapipe), so CI never passes without running them.
 */
export async function webgpuSkip(): Promise<string | false> {
  try {
    await findAdapter();
    return false;
  } catch (e) {
    if (!(e instanceof WebGpuUnavailableError)) throw e;
    if (process.env.CI === 'true') throw new Error(`CI=true and no WebGPU adapter: ${e.message}`);
    const reason = `no WebGPU adapter (${e.message}); run scripts/setup-lavapipe.sh to enable these tests`;
    process.stderr.write(`webgpu tests skipped: ${reason}\n`);
    return reason;
  }
}
