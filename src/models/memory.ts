import { geometry, type VitConfig } from './vit-config.js';

/**
 * How much backend memory a ViT needs, estimated from its config alone, so that a model too large for the wasm heap
 * is refused before gigabytes of weights are read and uploaded (the upload would otherwise die deep inside the
 * engine with an allocation error, or after minutes of swapping).
 *
 * The estimate follows what the model code keeps:
 * - every Linear holds its weight in both orientations (W and Wᵀ, linear.ts);
 * - the sign splits W⁺/W⁻ in both orientations (four more copies) are cached when they fit linear.ts's 512 MiB
 *   budget, else made per rule call, so only the largest layer's four copies are alive at once;
 * - other parameters (biases, norms, position embedding, class token) once;
 * - one image's forward trace (every block's inputs, q/k/v, attention, MLP activations) plus the relevance /
 *   gradient maps the methods keep per block (two attention-sized maps) and one block's worth in flight.
 */

export const WASM_HEAP_BYTES = 4 * 2 ** 30;
const SIGNED_CACHE_BUDGET = 512 * 2 ** 20;
const F32 = 4;

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
  const signed = 4 * linearParams * F32 <= SIGNED_CACHE_BUDGET ? 4 * linearParams : 4 * Math.max(...linears);
  const weightBytes = F32 * (2 * linearParams + otherParams + signed);
  const perBlock = 11 * N * D + 2 * N * M + H * N * N;
  const activationBytes =
    F32 * (c.depth * (perBlock + 2 * H * N * N) + 2 * perBlock + 2 * c.in_chans * c.img_size ** 2);
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
 * Throws ModelTooLargeError when `backend` is wasm and the model needs more than its 4 GiB heap. Call it before
 * reading the weights: it looks at nothing but the config.
 */
export function assertFitsBackend(backend: string | undefined, c: VitConfig, weightsFile: string): void {
  if (backend !== 'wasm') return;
  const e = estimateVitMemory(c);
  if (e.totalBytes <= WASM_HEAP_BYTES) return;
  throw new ModelTooLargeError(
    `${weightsFile}: ${c.name} needs about ${gib(e.totalBytes)} GiB (weights ${gib(e.weightBytes)} GiB, one image's ` +
      `activations ${gib(e.activationBytes)} GiB), more than the wasm backend's ${WASM_HEAP_BYTES / 2 ** 30} GiB heap; ` +
      'install @tensorflow/tfjs-node (--backend tensorflow)',
  );
}
