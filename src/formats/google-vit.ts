import { FileFormatError, type HostTensor, numel, type StateDict, shapeString } from './host-tensor.js';

/**
 * Google / JAX ViT `.npz` checkpoints (big_vision / vision_transformer naming) → timm state-dict keys. The mapping
 * is tabled in docs/formats.md#google-vit-npz. A common key prefix such as `opt/target/` is stripped first. Keys
 * that have no timm counterpart (e.g. `pre_logits/*` of ImageNet-21k checkpoints) are passed through under their
 * own names, so the model's key check reports them as unexpected.
 */

const TOP_LEVEL_DIRS = ['Transformer', 'embedding', 'head', 'pre_logits'];

/** True when the keys look like a Google ViT checkpoint (possibly with a prefix). */
export function isGoogleVit(keys: Iterable<string>): boolean {
  for (const k of keys) {
    if (/(^|\/)Transformer\/(encoderblock_\d+|encoder_norm|posembed_input)\//.test(k)) return true;
    if (/(^|\/)embedding\/kernel$/.test(k)) return true;
  }
  return false;
}

/** The prefix shared by every key, cut at a `/` and before the first known top-level name. */
function commonPrefix(keys: string[]): string {
  if (keys.length === 0) return '';
  let p = keys[0]!;
  for (const k of keys) {
    let i = 0;
    while (i < p.length && i < k.length && p[i] === k[i]) i++;
    p = p.slice(0, i);
  }
  const dirs = p
    .slice(0, p.lastIndexOf('/') + 1)
    .split('/')
    .slice(0, -1);
  const cut = dirs.findIndex((d) => TOP_LEVEL_DIRS.includes(d));
  const kept = cut < 0 ? dirs : dirs.slice(0, cut);
  return kept.map((d) => `${d}/`).join('');
}

function floatData(t: HostTensor, key: string, file: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new FileFormatError(file, `'${key}' is not a floating-point array`);
  return t.data;
}

/** Permute axes: out.shape[i] = in.shape[axes[i]]. */
function permute(t: HostTensor, axes: readonly number[], key: string, file: string): HostTensor {
  const src = floatData(t, key, file);
  const nd = t.shape.length;
  const inStrides = new Array<number>(nd);
  let s = 1;
  for (let d = nd - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= t.shape[d]!;
  }
  const shape = axes.map((a) => t.shape[a]!);
  const strides = axes.map((a) => inStrides[a]!);
  const n = numel(shape);
  const out = new Float32Array(n);
  const counter = new Array<number>(nd).fill(0);
  let p = 0;
  for (let i = 0; i < n; i++) {
    out[i] = src[p]!;
    for (let d = nd - 1; d >= 0; d--) {
      counter[d]!++;
      p += strides[d]!;
      if (counter[d]! < shape[d]!) break;
      p -= strides[d]! * shape[d]!;
      counter[d] = 0;
    }
  }
  return { shape, data: out };
}

/** t(·): transpose by rank (4: HWIO → OIHW, 3: (2, 0, 1), 2: (1, 0)); other ranks unchanged. */
function t(x: HostTensor, key: string, file: string): HostTensor {
  switch (x.shape.length) {
    case 4:
      return permute(x, [3, 2, 0, 1], key, file);
    case 3:
      return permute(x, [2, 0, 1], key, file);
    case 2:
      return permute(x, [1, 0], key, file);
    default:
      return x;
  }
}

function reshape(x: HostTensor, shape: number[], key: string, file: string): HostTensor {
  if (numel(shape) !== numel(x.shape)) {
    throw new FileFormatError(file, `'${key}': cannot reshape ${shapeString(x.shape)} to ${shapeString(shape)}`);
  }
  return { shape, data: x.data };
}

function concat0(parts: HostTensor[], keys: string[], file: string): HostTensor {
  const rest = parts[0]!.shape.slice(1);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.shape.length !== rest.length + 1 || p.shape.slice(1).some((s, j) => s !== rest[j])) {
      throw new FileFormatError(
        file,
        `cannot concatenate ${keys.map((k, j) => `'${k}' ${shapeString(parts[j]!.shape)}`).join(', ')}`,
      );
    }
  }
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let o = 0;
  for (let i = 0; i < parts.length; i++) {
    const d = floatData(parts[i]!, keys[i]!, file);
    data.set(d, o);
    o += d.length;
  }
  return { shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), ...rest], data };
}

const SIMPLE: Record<string, [string, boolean]> = {
  'embedding/kernel': ['patch_embed.proj.weight', true],
  'embedding/bias': ['patch_embed.proj.bias', false],
  cls: ['cls_token', false],
  'Transformer/posembed_input/pos_embedding': ['pos_embed', false],
  'Transformer/encoder_norm/scale': ['norm.weight', false],
  'Transformer/encoder_norm/bias': ['norm.bias', false],
  'head/kernel': ['head.weight', true],
  'head/bias': ['head.bias', false],
};

const BLOCK_SIMPLE: Record<string, [string, boolean]> = {
  'LayerNorm_0/scale': ['norm1.weight', false],
  'LayerNorm_0/bias': ['norm1.bias', false],
  'LayerNorm_2/scale': ['norm2.weight', false],
  'LayerNorm_2/bias': ['norm2.bias', false],
  'MultiHeadDotProductAttention_1/out/bias': ['attn.proj.bias', false],
  'MlpBlock_3/Dense_0/kernel': ['mlp.fc1.weight', true],
  'MlpBlock_3/Dense_0/bias': ['mlp.fc1.bias', false],
  'MlpBlock_3/Dense_1/kernel': ['mlp.fc2.weight', true],
  'MlpBlock_3/Dense_1/bias': ['mlp.fc2.bias', false],
};

const QKV = ['query', 'key', 'value'];

/** timm's key order, for a tidy result: embeddings, blocks in order, final norm, head, then the rest. */
function orderKey(k: string): [number, number, number] {
  const top = ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias'];
  const inner = [
    'norm1.weight',
    'norm1.bias',
    'attn.qkv.weight',
    'attn.qkv.bias',
    'attn.proj.weight',
    'attn.proj.bias',
    'norm2.weight',
    'norm2.bias',
    'mlp.fc1.weight',
    'mlp.fc1.bias',
    'mlp.fc2.weight',
    'mlp.fc2.bias',
  ];
  const tail = ['norm.weight', 'norm.bias', 'head.weight', 'head.bias'];
  if (top.includes(k)) return [0, 0, top.indexOf(k)];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(k);
  if (m && inner.includes(m[2]!)) return [1, Number(m[1]), inner.indexOf(m[2]!)];
  if (tail.includes(k)) return [2, 0, tail.indexOf(k)];
  return [3, 0, 0];
}

export function googleVitToTimm(npz: StateDict, file: string): StateDict {
  const prefix = commonPrefix([...npz.keys()]);
  const src = new Map<string, HostTensor>();
  for (const [k, v] of npz) src.set(k.slice(prefix.length), v);

  const out = new Map<string, HostTensor>();
  const put = (k: string, v: HostTensor, from: string) => {
    if (out.has(k)) throw new FileFormatError(file, `'${from}' maps to '${k}', which is already set`);
    out.set(k, v);
  };
  const blocks = new Map<number, Map<string, HostTensor>>();

  for (const [k, v] of src) {
    const simple = SIMPLE[k];
    if (simple) {
      put(simple[0], simple[1] ? t(v, k, file) : v, k);
      continue;
    }
    const m = /^Transformer\/encoderblock_(\d+)\/(.+)$/.exec(k);
    if (m) {
      const i = Number(m[1]);
      const rest = m[2]!;
      const bs = BLOCK_SIMPLE[rest];
      if (bs) {
        put(`blocks.${i}.${bs[0]}`, bs[1] ? t(v, k, file) : v, k);
        continue;
      }
      if (rest === 'MultiHeadDotProductAttention_1/out/kernel') {
        // (H, d, D) → t → (D, H, d) → (D, H·d): W[o, h·d + j] = K[h, j, o]
        if (v.shape.length !== 3) {
          throw new FileFormatError(
            file,
            `'${prefix}${k}': expected a (heads, head_dim, dim) kernel, got ${shapeString(v.shape)}`,
          );
        }
        const w = t(v, k, file);
        put(`blocks.${i}.attn.proj.weight`, reshape(w, [w.shape[0]!, w.shape[1]! * w.shape[2]!], k, file), k);
        continue;
      }
      const q = /^MultiHeadDotProductAttention_1\/(query|key|value)\/(kernel|bias)$/.exec(rest);
      if (q) {
        let b = blocks.get(i);
        if (!b) blocks.set(i, (b = new Map()));
        b.set(`${q[1]}/${q[2]}`, v);
        continue;
      }
    }
    // No timm counterpart (pre_logits/*, unknown keys): keep the original name so the key check reports it.
    out.set(`${prefix}${k}`, v);
  }

  for (const [i, b] of blocks) {
    const base = `Transformer/encoderblock_${i}/MultiHeadDotProductAttention_1`;
    for (const part of ['kernel', 'bias']) {
      const missing = QKV.filter((n) => !b.has(`${n}/${part}`));
      if (missing.length === QKV.length) continue;
      if (missing.length) {
        throw new FileFormatError(
          file,
          `block ${i}: ${missing.map((n) => `'${prefix}${base}/${n}/${part}'`).join(', ')} missing (query, key and value must all be present)`,
        );
      }
      const keys = QKV.map((n) => `${prefix}${base}/${n}/${part}`);
      const parts = QKV.map((n, j) => {
        const x = b.get(`${n}/${part}`)!;
        if (part === 'bias') return reshape(x, [numel(x.shape)], keys[j]!, file);
        // (D, H, d) → (D, H·d) → transpose → (H·d, D)
        if (x.shape.length !== 3) {
          throw new FileFormatError(
            file,
            `'${keys[j]}': expected a (dim, heads, head_dim) kernel, got ${shapeString(x.shape)}`,
          );
        }
        return t(reshape(x, [x.shape[0]!, x.shape[1]! * x.shape[2]!], keys[j]!, file), keys[j]!, file);
      });
      put(`blocks.${i}.attn.qkv.${part === 'kernel' ? 'weight' : 'bias'}`, concat0(parts, keys, file), base);
    }
  }

  const sorted = [...out.entries()].sort((a, b) => {
    const ka = orderKey(a[0]);
    const kb = orderKey(b[0]);
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
  return new Map(sorted);
}
