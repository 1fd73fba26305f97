import type { StateDict } from '../../src/formats/host-tensor.js';
import type { BertConfig } from '../../src/models/bert-config.js';
import { expectedBertKeys } from '../../src/models/bert-weights.js';
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

/**
 * (base, amp) of a BERT state-dict tensor, as scripts/golden/make-bert-geometries.py's weight_kind (the golden BERT
 * geometries P1, P2): bert/tiny_a's standard deviations as uniform amplitudes (amp = std·√3).
 */
export function bertFormulaKind(key: string, shape: readonly number[]): { base: number; amp: number } {
  const r3 = Math.sqrt(3);
  if (key.endsWith('word_embeddings.weight')) return { base: 0, amp: 1.0 * r3 };
  if (key.endsWith('position_embeddings.weight')) return { base: 0, amp: 0.5 * r3 };
  if (key.endsWith('token_type_embeddings.weight')) return { base: 0, amp: 0.3 * r3 };
  if (key.includes('LayerNorm.weight')) return { base: 1, amp: 0.1 * r3 };
  if (key.endsWith('.bias')) return { base: 0, amp: 0.1 * r3 };
  return { base: 0, amp: 1.2 * Math.sqrt(3 / shape[1]!) };
}

/** The whole BERT state dict of a golden BERT geometry, from its weight seed (t in expectedBertKeys order). */
export function bertFormulaStateDict(cfg: BertConfig, seed: number): StateDict {
  const sd: StateDict = new Map();
  let t = 0;
  for (const [key, shape] of expectedBertKeys(cfg)) {
    const { base, amp } = bertFormulaKind(key, shape);
    const n = shape.reduce((a, b) => a * b, 1);
    sd.set(key, { shape, data: formulaTensor(seed, t++, n, base, amp) });
  }
  return sd;
}

/** The `image` block of a geometry's case json. */
export interface FormulaImage {
  kind: 'random' | 'smooth';
  seed: number;
  params?: { a: number; b: number; phi: number; cx: number; cy: number; s: number; f: number };
  input_sha256?: string;
}

/**
 * The normalised input (1×3×224×224, C-order) of a geometry's case, rebuilt from its recipe as
 * make-vit-geometries.py's random_image / smooth_image and the script's normalize() ((img − 0.5) / 0.5 in float32):
 * - random: k = mix32(i + mix32(seed ^ 0xA5A5A5A5)) >> 24, img = float32(k / 255): exact;
 * - smooth: the float64 formula with the case's params (sin, exp and cos may differ from numpy's in the last bit of
 *   a double, which the cast to float32 hides but for about one value in 10⁹): the caller checks input_sha256.
 */
export function formulaInput(image: FormulaImage): Float32Array {
  const n = 224 * 224;
  const img = new Float32Array(3 * n);
  if (image.kind === 'random') {
    const k = mix32((image.seed ^ 0xa5a5a5a5) >>> 0);
    for (let i = 0; i < 3 * n; i++) img[i] = (mix32((i + k) >>> 0) >>> 24) / 255;
  } else {
    const p = image.params;
    if (!p) throw new Error('smooth image without params');
    const clip = (x: number) => Math.min(1, Math.max(0, x));
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++) {
        const u = x / 223;
        const v = y / 223;
        const du = u - p.cx;
        const dv = v - p.cy;
        const i = y * 224 + x;
        img[i] = clip(0.5 + 0.35 * Math.sin(2 * Math.PI * (p.a * u + p.b * v) + p.phi));
        img[n + i] = clip(0.1 + 0.85 * Math.exp(-(du * du + dv * dv) / (2 * (p.s * p.s))));
        img[2 * n + i] = clip(0.15 + 0.7 * v * (1 - 0.5 * u) + 0.1 * Math.cos(p.f * Math.PI * u));
      }
  }
  // normalize(): sub_(0.5) then div_(0.5), each rounded to float32.
  for (let i = 0; i < img.length; i++) img[i] = Math.fround(img[i]! - 0.5) / 0.5;
  return img;
}
