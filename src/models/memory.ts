import type { BertConfig } from './bert-config.js';
import { DERIVED_CACHE_BUDGET_BYTES, DERIVED_COPIES } from './linear.js';
import { geometry, type VitConfig } from './vit-config.js';

/**
 * How much backend memory a ViT needs, estimated from its config alone, so that a model too large for the wasm heap
 * is refused before gigabytes of weights are read and uploaded (the upload would otherwise die deep inside the
 * engine: XNNPACK "status 6" and an Emscripten abort, which is what ViT-L/16 does on wasm).
 *
 * The estimate follows what the model code and the wasm backend keep:
 * - every Linear holds its weight in both orientations (W and Wᵀ, linear.ts), and XNNPACK keeps a packed copy of
 *   every weight it has multiplied by (per tensor, for the life of the tensor): four copies in all;
 * - the derived weights W⁺, W⁻, |W| in both orientations (six more copies, packed too) are cached when they fit
 *   linear.ts's budget, else made per rule call, so only the largest layer's are alive at once;
 * - other parameters (biases, norms, position embedding, class token) once;
 * - one image's forward trace (every block's inputs, q/k/v, attention, MLP activations, the products kept for the
 *   'ours' rule) plus the relevance / gradient maps the methods keep per block and one block's worth in flight,
 *   with the allocator's slack.
 * Calibrated on ViT-B/16 (wasm heap 741 MiB after loading, 1730 MiB after a six-method sweep; estimate 1.7 GiB) and
 * ViT-L/16 (aborts on wasm; estimate above 4 GiB).
 */

export const WASM_HEAP_BYTES = 4 * 2 ** 30;
const F32 = 4;
/** Each weight tensor and XNNPACK's packed copy of it. */
const PACKED = 2;
/** Measured heap growth over the estimated activations (allocator slack, temporaries of the rule calls). */
const ACTIVATION_SLACK = 1.6;

export interface MemoryEstimate {
  weightBytes: number;
  activationBytes: number;
  totalBytes: number;
}

export function estimateVitMemory(c: VitConfig): MemoryEstimate {
  const g = geometry(c);
  const D = c.embed_dim;
  const M = g.mlpHidden;
  const N = g.numTokens;
  const H = c.num_heads;
  const linears = [D * c.in_chans * c.patch_size ** 2, c.num_classes * D];
  for (let i = 0; i < c.depth; i++) linears.push(3 * D * D, D * D, M * D, D * M);
  const linearParams = linears.reduce((a, b) => a + b, 0);
  const otherParams = D + N * D + c.depth * (4 * D + 3 * D + 2 * D + M) + 2 * D + c.num_classes;
  const derived =
    DERIVED_COPIES * linearParams * F32 <= DERIVED_CACHE_BUDGET_BYTES
      ? DERIVED_COPIES * linearParams
      : DERIVED_COPIES * Math.max(...linears);
  const weightBytes = F32 * (PACKED * (2 * linearParams + derived) + otherParams);
  const perBlock = 11 * N * D + 2 * N * M + H * N * N;
  const activationBytes =
    ACTIVATION_SLACK * F32 * (c.depth * (perBlock + 2 * H * N * N) + 2 * perBlock + 2 * c.in_chans * c.img_size ** 2);
  return { weightBytes, activationBytes, totalBytes: weightBytes + activationBytes };
}

export function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(1);
}

/** A model the chosen backend cannot hold; the message names the weights file, the need and the way out. */
export class ModelTooLargeError extends Error {
  override name = 'ModelTooLargeError';
}

/**
 * Throws ModelTooLargeError when `backend` is wasm and the model needs more than its 4 GiB heap, or webgpu and one of
 * its tensors exceeds the adapter's buffer limits. Call it before
 * reading the weights: it looks at nothing but the config.
 */
export function assertFitsBackend(
  backend: string | undefined,
  c: VitConfig,
  weightsFile: string,
  gpu?: GpuLimits,
): void {
  if (backend === 'webgpu' && gpu) {
    assertFitsGpu(gpu, largestVitTensor(c), c.name, weightsFile);
    return;
  }
  if (backend !== 'wasm') return;
  const e = estimateVitMemory(c);
  if (e.totalBytes <= WASM_HEAP_BYTES) return;
  throw new ModelTooLargeError(
    `${weightsFile}: ${c.name} needs about ${gib(e.totalBytes)} GiB (weights ${gib(e.weightBytes)} GiB, one image's ` +
      `activations ${gib(e.activationBytes)} GiB), more than the wasm backend's ${WASM_HEAP_BYTES / 2 ** 30} GiB heap; ` +
      'install @tensorflow/tfjs-node (--backend tensorflow)',
  );
}

/** The buffer limits of a WebGPU adapter (bytes). */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** The largest of (element count, description) candidates, in float32 bytes. */
function largest(candidates: [number, string][]): { bytes: number; what: string } {
  const [n, what] = candidates.reduce((a, b) => (b[0] > a[0] ? b : a));
  return { bytes: F32 * n, what };
}

/** The largest single tensor a ViT pass holds for one image (bytes) and what it is. */
export function largestVitTensor(c: VitConfig): { bytes: number; what: string } {
  const g = geometry(c);
  const N = g.numTokens;
  const D = c.embed_dim;
  const candidates: [number, string][] = [
    [g.mlpHidden * D, `an MLP weight (${g.mlpHidden}×${D})`],
    [3 * D * D, `the qkv weight (${3 * D}×${D})`],
    [c.num_classes * D, `the head weight (${c.num_classes}×${D})`],
    [c.num_heads * N * N, `one block's attention (${c.num_heads}×${N}×${N})`],
    [N * g.mlpHidden, `one block's MLP activation (${N}×${g.mlpHidden})`],
    [c.in_chans * c.img_size ** 2, `the image (${c.in_chans}×${c.img_size}×${c.img_size})`],
  ];
  return largest(candidates);
}

/** The largest single tensor a BERT pass holds for one sequence of the longest length (bytes) and what it is. */
export function largestBertTensor(c: BertConfig): { bytes: number; what: string } {
  const L = c.max_position_embeddings;
  const D = c.hidden_size;
  const candidates: [number, string][] = [
    [c.vocab_size * D, `the word embeddings (${c.vocab_size}×${D})`],
    [c.intermediate_size * D, `an intermediate weight (${c.intermediate_size}×${D})`],
    [c.num_attention_heads * L * L, `one layer's attention at ${L} tokens (${c.num_attention_heads}×${L}×${L})`],
    [L * c.intermediate_size, `one layer's intermediate activation at ${L} tokens`],
  ];
  return largest(candidates);
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * Throws ModelTooLargeError when one tensor of the model would not fit one buffer of the GPU adapter
 * (maxStorageBufferBindingSize, maxBufferSize): WebGPU would fail on it in the middle of a pass. Call it before
 * reading the weights.
 */
export function assertFitsGpu(
  gpu: GpuLimits,
  largest: { bytes: number; what: string },
  model: string,
  weightsFile: string,
): void {
  const limit = Math.min(gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
  if (largest.bytes <= limit) return;
  throw new ModelTooLargeError(
    `${weightsFile}: ${model} needs one GPU buffer of ${mib(largest.bytes)} for ${largest.what}, more than this ` +
      `adapter allows (maxStorageBufferBindingSize ${mib(gpu.maxStorageBufferBindingSize)}, maxBufferSize ` +
      `${mib(gpu.maxBufferSize)}); use --backend wasm or tensorflow, or a GPU with larger limits`,
  );
}
