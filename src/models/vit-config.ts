import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { FileFormatError } from '../formats/host-tensor.js';

/**
 * ViT/DeiT geometry with timm's names. Nothing downstream hard-codes 224 or 14×14: the patch grid is
 * always img_size / patch_size.
 */
export interface VitConfig {
  name: string;
  img_size: number;
  patch_size: number;
  in_chans: number;
  embed_dim: number;
  depth: number;
  num_heads: number;
  mlp_ratio: number;
  qkv_bias: boolean;
  num_classes: number;
  /** Per-channel input normalisation: x_norm = (x − mean) / std on [0, 1] pixels. */
  mean: [number, number, number] | number[];
  std: [number, number, number] | number[];
  /** LayerNorm eps inside the blocks (1e-6 in every reference model file). */
  norm_eps: number;
  /** Final LayerNorm eps of the plain classifier (ViT_new / timm): 1e-6. Used by rollout and GradCAM. */
  final_norm_eps: number;
  /**
   * Final LayerNorm eps of the reference's LRP model files (ViT_LRP / ViT_orig_LRP build it with torch's
   * default, 1e-5; quirk Q1). Used by the relevance methods, whose "top" class is that model's argmax.
   */
  lrp_final_norm_eps: number;
}

export interface Geometry {
  grid: [number, number];
  numPatches: number;
  numTokens: number;
  headDim: number;
  mlpHidden: number;
  scale: number;
}

export function geometry(c: VitConfig): Geometry {
  const g = c.img_size / c.patch_size;
  const headDim = c.embed_dim / c.num_heads;
  return {
    grid: [g, g],
    numPatches: g * g,
    numTokens: g * g + 1,
    headDim,
    mlpHidden: Math.trunc(c.embed_dim * c.mlp_ratio),
    scale: headDim ** -0.5,
  };
}

const HALF = [0.5, 0.5, 0.5];

/** The presets live as JSON in configs/models/ (one file each), so users can copy and edit them. */
export const PRESET_DIR = resolve(import.meta.dirname, '../../configs/models');

export const VIT_PRESET_NAMES: readonly string[] = readdirSync(PRESET_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -5))
  .sort();

const REQUIRED = [
  'img_size',
  'patch_size',
  'in_chans',
  'embed_dim',
  'depth',
  'num_heads',
  'mlp_ratio',
  'num_classes',
] as const;

/**
 * Build a config from a JSON object with timm names at the top level. Also accepts the layout of the golden
 * `config.json` files (`model: {...}`, `normalisation: {mean, std}`, `layernorm_eps: {...}`), so a config that
 * describes a reference run can be used as it is.
 */
export function parseVitConfig(raw: unknown, source: string): VitConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FileFormatError(source, 'expected a JSON object with the timm model fields (img_size, patch_size, …)');
  }
  const top = raw as Record<string, unknown>;
  const m = (typeof top.model === 'object' && top.model !== null ? top.model : top) as Record<string, unknown>;
  const norm = (top.normalisation ?? top.normalization ?? {}) as Record<string, unknown>;
  const eps = (top.layernorm_eps ?? {}) as Record<string, Record<string, number> | undefined>;
  let base: VitConfig | undefined;
  if (typeof m.preset === 'string') {
    if (!VIT_PRESET_NAMES.includes(m.preset)) {
      throw new FileFormatError(source, `unknown preset '${m.preset}' (known: ${VIT_PRESET_NAMES.join(', ')})`);
    }
    base = vitPreset(m.preset);
  }
  const num = (k: string, fallback?: number): number => {
    const v = m[k] ?? (base as unknown as Record<string, unknown> | undefined)?.[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new FileFormatError(
        source,
        v === undefined ? `missing field '${k}'` : `field '${k}' must be a number, found ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  for (const k of REQUIRED) num(k);
  const vec = (v: unknown, k: string, fallback: number[]): number[] => {
    if (v === undefined) return fallback;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) return v as number[];
    if (typeof v === 'number') return [v, v, v];
    throw new FileFormatError(source, `field '${k}' must be a number or a list of numbers, found ${JSON.stringify(v)}`);
  };
  const cfg: VitConfig = {
    name: String(m.name ?? top.name ?? base?.name ?? 'vit'),
    img_size: num('img_size'),
    patch_size: num('patch_size'),
    in_chans: num('in_chans', 3),
    embed_dim: num('embed_dim'),
    depth: num('depth'),
    num_heads: num('num_heads'),
    mlp_ratio: num('mlp_ratio', 4),
    qkv_bias: Boolean(m.qkv_bias ?? base?.qkv_bias ?? true),
    num_classes: num('num_classes'),
    mean: vec(m.mean ?? norm.mean, 'mean', base?.mean ?? HALF),
    std: vec(m.std ?? norm.std, 'std', base?.std ?? HALF),
    norm_eps: num('norm_eps', eps.vit_lrp?.blocks ?? 1e-6),
    final_norm_eps: num('final_norm_eps', eps.vit_new?.final_norm ?? 1e-6),
    lrp_final_norm_eps: num('lrp_final_norm_eps', eps.vit_lrp?.final_norm ?? 1e-5),
  };
  validateVitConfig(cfg, source);
  return cfg;
}

export function validateVitConfig(c: VitConfig, source: string): void {
  const problems: string[] = [];
  for (const k of ['img_size', 'patch_size', 'in_chans', 'embed_dim', 'depth', 'num_heads', 'num_classes'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) problems.push(`${k} must be a positive integer, found ${c[k]}`);
  }
  if (!(c.mlp_ratio > 0)) problems.push(`mlp_ratio must be positive, found ${c.mlp_ratio}`);
  if (
    Number.isInteger(c.img_size) &&
    Number.isInteger(c.patch_size) &&
    c.patch_size > 0 &&
    c.img_size % c.patch_size !== 0
  ) {
    problems.push(`img_size ${c.img_size} is not divisible by patch_size ${c.patch_size}`);
  }
  if (
    Number.isInteger(c.embed_dim) &&
    Number.isInteger(c.num_heads) &&
    c.num_heads > 0 &&
    c.embed_dim % c.num_heads !== 0
  ) {
    problems.push(`num_heads ${c.num_heads} does not divide embed_dim ${c.embed_dim}`);
  }
  if (c.mean.length !== c.in_chans || c.std.length !== c.in_chans) {
    problems.push(
      `mean and std need ${c.in_chans} values (one per input channel), found ${c.mean.length} and ${c.std.length}`,
    );
  }
  if (c.std.some((s) => s === 0)) problems.push('std must not contain 0');
  for (const k of ['norm_eps', 'final_norm_eps', 'lrp_final_norm_eps'] as const) {
    if (!(c[k] > 0)) problems.push(`${k} must be positive, found ${c[k]}`);
  }
  if (problems.length) throw new FileFormatError(source, `invalid model config: ${problems.join('; ')}`);
}

export function readVitConfig(file: string): VitConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read model config (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(file, `model config is not valid JSON (${(e as Error).message})`);
  }
  return parseVitConfig(raw, file);
}

export function vitPreset(name: string): VitConfig {
  if (!VIT_PRESET_NAMES.includes(name))
    throw new Error(`unknown model preset '${name}' (known: ${VIT_PRESET_NAMES.join(', ')})`);
  return readVitConfig(resolve(PRESET_DIR, `${name}.json`));
}
