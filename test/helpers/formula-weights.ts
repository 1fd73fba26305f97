import type { StateDict } from '../../src/formats/host-tensor.js';
import type { VitConfig } from '../../src/models/vit-config.js';
import { expectedVitKeys } from '../../src/models/vit-weights.js';

/**
 * The weights of the golden geometries G1…G6, rebuilt bit for bit from the formula that
 * scripts/golden/make-vit-geometries.py used (its docstring and each config.json → weights.formula give it):
 *   mix32 = lowbias32; h = mix32(i + mix32(t + mix32(seed))) (mod 2³²); u = (h − 2³¹) / 2³¹ ∈ [−1, 1);
 *   w = float32(base + amp·u), the multiply and add in float64, one rounding to float32.
 * i is the element index in C order, t the tensor's index in the state-dict order (expectedVitKeys, ViT_new's
 * order). The large configs store no weights.safetensors: this is how the tests get their weights.
 */

/** lowbias32 (Chris Wellons' 32-bit integer hash). */
export function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** (base, amp) of a state-dict tensor, as make-vit-geometries.py's weight_kind. */
export function formulaKind(key: string, shape: readonly number[]): { base: number; amp: number } {
  const r3 = Math.sqrt(3);
  if (key === 'cls_token') return { base: 0, amp: 0.5 * r3 };
  if (key === 'pos_embed') return { base: 0, amp: 0.2 * r3 };
  if (key === 'patch_embed.proj.weight') return { base: 0, amp: 0.1 * r3 };
  if (key.endsWith('.bias')) return { base: 0, amp: 0.05 * r3 };
  if (key.startsWith('norm') || key.includes('.norm')) return { base: 1, amp: 0.1 * r3 };
  return { base: 0, amp: 1.4 * Math.sqrt(3 / shape[1]!) };
}

/** Elements 0..n−1 of tensor stream t: float32(base + amp·u). */
export function formulaTensor(seed: number, t: number, n: number, base: number, amp: number): Float32Array {
  const k = mix32((t + mix32(seed)) >>> 0);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = (mix32((i + k) >>> 0) - 2 ** 31) / 2 ** 31;
    out[i] = base + amp * u; // the store into a Float32Array rounds to nearest-even
  }
  return out;
}

/** The whole state dict of a config, from the weight seed. */
export function formulaStateDict(cfg: VitConfig, seed: number): StateDict {
  const sd: StateDict = new Map();
  let t = 0;
  for (const [key, shape] of expectedVitKeys(cfg)) {
    const { base, amp } = formulaKind(key, shape);
    const n = shape.reduce((a, b) => a * b, 1);
    sd.set(key, { shape, data: formulaTensor(seed, t++, n, base, amp) });
  }
  return sd;
}
