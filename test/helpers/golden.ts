import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, initBackend } from '../../src/engine/backend.js';
import type { StateDict } from '../../src/formats/host-tensor.js';
import { readSafetensors } from '../../src/formats/safetensors.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { readVitConfig } from '../../src/models/vit-config.js';
import { vitWeightsFromStateDict } from '../../src/models/vit-weights.js';

/**
 * Golden data produced by the official implementation lives in ../shared/golden beside the checkout
 * (CI has it there too). A missing folder is a failure, never a skip.
 */
export const GOLDEN = resolve(process.env.BENCH_GOLDEN ?? resolve(import.meta.dirname, '../../../shared/golden'));

export function goldenPath(...parts: string[]): string {
  const p = resolve(GOLDEN, ...parts);
  if (!existsSync(p))
    throw new Error(`golden file missing: ${p} (the tests need ../shared/golden beside the checkout, or BENCH_GOLDEN)`);
  return p;
}

export function readJson<T = Record<string, unknown>>(...parts: string[]): T {
  return JSON.parse(readFileSync(goldenPath(...parts), 'utf8')) as T;
}

export function readGoldenTensors(...parts: string[]): StateDict {
  return readSafetensors(goldenPath(...parts), { keepF64: true }).tensors;
}

export function goldenArray(sd: StateDict, name: string): Float32Array | Float64Array {
  const t = sd.get(name);
  if (!t) throw new Error(`golden tensor '${name}' not found`);
  return t.data as Float32Array | Float64Array;
}

/** Every golden ViT config folder (S1 today; any other folder with a config.json is picked up too). */
export function vitGoldenConfigs(): string[] {
  const root = goldenPath('vit');
  const found = readdirSync(root).filter(
    (d) => existsSync(resolve(root, d, 'config.json')) && existsSync(resolve(root, d, 'weights.safetensors')),
  );
  if (!found.includes('S1')) throw new Error(`golden config S1 not found under ${root}`);
  return found.sort();
}

/** The case names of a config folder (from case-<name>.json). */
export function vitGoldenCases(config: string): string[] {
  return readdirSync(goldenPath('vit', config))
    .filter((f) => /^case-.+\.json$/.test(f))
    .map((f) => f.slice(5, -5))
    .sort();
}

export async function loadGoldenVit(name: string, backend: BackendChoice = 'auto'): Promise<VisionTransformer> {
  await initBackend(backend);
  const cfg = readVitConfig(goldenPath('vit', name, 'config.json'));
  const file = goldenPath('vit', name, 'weights.safetensors');
  return new VisionTransformer(cfg, vitWeightsFromStateDict(readSafetensors(file).tensors, cfg, file));
}

export function inputTensor(sd: StateDict): tf.Tensor4D {
  const t = sd.get('input')!;
  return tf.tensor4d(Float32Array.from(t.data as Float32Array), t.shape as [number, number, number, number]);
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}

export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! - ma;
    const y = b[i]! - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Our registry name → the reference script's method name used in the golden files. */
export const GOLDEN_NAME: Record<string, string> = {
  rollout: 'rollout',
  raw_attention: 'attn_last_layer',
  gradcam: 'attn_gradcam',
  lrp: 'full_lrp',
  partial_lrp: 'lrp_last_layer',
  transformer_attribution: 'transformer_attribution',
};

export interface GoldenMethodEntry {
  method: string;
  vis_class: 'top' | 'target';
  class_used: number;
  raw_shape: number[];
  f32_vs_f64: { raw_max_abs_diff_over_max_abs: number; final_max_abs_diff: number; raw_pearson: number };
}

export interface GoldenCase {
  top_class: number;
  target_class: number;
  methods: GoldenMethodEntry[];
}

export interface Tolerance {
  /** Bound on max|ours − ref raw| as a multiple of max|ref raw|. */
  rawRel: number;
  /** Bound on max|ours − ref final|. */
  finalAbs: number;
  /** Minimum Pearson correlation of our raw map with the float64 twin (LRP-type maps only). */
  minPearson?: number;
}

/**
 * The float32 tolerances of golden/vit/README.md ("Suggested tolerances", float32 implementation).
 * LRP-type maps (transformer attribution, full LRP) are ill-conditioned in float32: the README bounds their
 * raw maps by 5× the reference's own float32-vs-float64 gap plus 1e-4, with Pearson ≥ 0.99 against the
 * float64 twin. It gives no float32 bound for their final maps; we hold them to the same 5× of the
 * reference's own final-map gap, plus 1e-4.
 */
export function toleranceFor(method: string, entry: GoldenMethodEntry): Tolerance {
  const gap = entry.f32_vs_f64;
  switch (method) {
    case 'rollout':
    case 'raw_attention':
    case 'gradcam':
      return { rawRel: 1e-4, finalAbs: 1e-4 };
    case 'partial_lrp':
      return { rawRel: 1e-3, finalAbs: 1e-4 };
    default:
      return {
        rawRel: 5 * gap.raw_max_abs_diff_over_max_abs + 1e-4,
        finalAbs: 5 * gap.final_max_abs_diff + 1e-4,
        minPearson: 0.99,
      };
  }
}
