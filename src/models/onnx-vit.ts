/**
 * The ViT classifier (logits only, the perturbation test's pass) as an ONNX model, written from our state dict
 * (timm names, src/models/vit-weights.ts) by a minimal protobuf encoder: no Python, no `onnx` package.
 *
 * The graph does what `VisionTransformer.logits` does (src/models/vit.ts), op for op where ONNX allows: the
 * patch-embedding conv, CLS concat, position add, pre-norm blocks (LayerNormalization, qkv MatMul + bias, scaled
 * dot-product softmax attention, proj, exact erf GELU MLP), final LayerNorm on the CLS token with
 * `final_norm_eps`, head. Input `input` [B, C, H, W] (normalised), output `logits` [B, classes]; B is dynamic.
 * Opset 17 (LayerNormalization), IR version 8.
 */
import type { StateDict } from '../formats/host-tensor.js';
import { geometry, type VitConfig } from './vit-config.js';
import { expectedVitKeys } from './vit-weights.js';

// ------------------------------------------------------------------------------------------ protobuf writer

/** Protobuf wire encoding of one message: fields appended in order. */
class Msg {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }

  private varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x) byte |= 0x80;
      out.push(byte);
    } while (x);
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number): this {
    this.key(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    this.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Msg): this {
    return this.bytes(field, m.encode());
  }

  encode(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

// ONNX enums (onnx.proto).
const FLOAT = 1;
const INT64 = 7;
const DOUBLE = 11;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

type Attr = number | number[] | { float: number };

function attribute(name: string, v: Attr): Msg {
  const a = new Msg().str(1, name);
  if (Array.isArray(v)) {
    for (const x of v) a.int(8, x);
    return a.int(20, ATTR_INTS);
  }
  if (typeof v === 'object') return a.float(2, v.float).int(20, ATTR_FLOAT);
  return a.int(3, v).int(20, ATTR_INT);
}

function tensorProto(name: string, dims: number[], data: Float32Array | BigInt64Array): Msg {
  const t = new Msg();
  for (const d of dims) t.int(1, d);
  t.int(2, data instanceof Float32Array ? FLOAT : INT64);
  t.str(8, name);
  return t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function valueInfo(name: string, dims: (number | string)[], elemType = FLOAT): Msg {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
  const tensorType = new Msg().int(1, elemType).msg(2, shape);
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
}

/** A graph under construction: nodes in topological order, initialisers, fresh value names. */
class Graph {
  private readonly nodes: Msg[] = [];
  private readonly inits: Msg[] = [];
  private n = 0;

  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, output?: string): string {
    const out = output ?? `t${this.n++}`;
    const node = new Msg();
    for (const i of inputs) node.str(1, i);
    node
      .str(2, out)
      .str(3, `${type}_${this.n++}`)
      .str(4, type);
    for (const [k, v] of Object.entries(attrs)) node.msg(5, attribute(k, v));
    this.nodes.push(node);
    return out;
  }

  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    this.inits.push(tensorProto(name, dims, data));
    return name;
  }

  ints(name: string, values: number[]): string {
    return this.init(name, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  scalar(name: string, v: number): string {
    return this.init(name, [], Float32Array.of(v));
  }

  encode(name: string, inputs: Msg[], outputs: Msg[]): Msg {
    const g = new Msg();
    for (const n of this.nodes) g.msg(1, n);
    g.str(2, name);
    for (const i of this.inits) g.msg(5, i);
    for (const i of inputs) g.msg(11, i);
    for (const o of outputs) g.msg(12, o);
    return g;
  }
}

// ------------------------------------------------------------------------------------------ the ViT graph

/** The ONNX model bytes of the ViT classifier `cfg` with weights `sd` (checked against the config's keys). */
export function vitOnnxModel(cfg: VitConfig, sd: StateDict): Uint8Array {
  const expected = expectedVitKeys(cfg);
  for (const [k, shape] of expected) {
    const t = sd.get(k);
    if (!t || t.shape.join() !== shape.join()) throw new Error(`state dict: '${k}' missing or not [${shape}]`);
  }
  const geo = geometry(cfg);
  const D = cfg.embed_dim;
  const H = cfg.num_heads;
  const d = geo.headDim;
  const g = new Graph();
  const w = (k: string, dims?: number[]): string =>
    g.init(k, dims ?? expected.get(k)!, Float32Array.from(sd.get(k)!.data as Float32Array));
  /** A Linear's weight transposed to (in, out), so that y = x·Wᵀ is one MatMul. */
  const wT = (k: string): string => {
    const [out, inp] = expected.get(k)! as [number, number];
    const src = sd.get(k)!.data as Float32Array;
    const t = new Float32Array(out * inp);
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = src[o * inp + i]!;
    return g.init(`${k}.T`, [inp, out], t);
  };
  const linear = (x: string, p: string, bias = true, output?: string): string => {
    const y = g.op('MatMul', [x, wT(`${p}.weight`)], {}, bias ? undefined : output);
    return bias ? g.op('Add', [y, w(`${p}.bias`)], {}, output) : y;
  };
  const layerNorm = (x: string, p: string, eps: number): string =>
    g.op('LayerNormalization', [x, w(`${p}.weight`), w(`${p}.bias`)], { axis: -1, epsilon: { float: eps } });

  // Patch embedding: conv with stride = kernel = patch size, then [B, D, g, g] → [B, P, D].
  const p = cfg.patch_size;
  const conv = g.op('Conv', ['input', w('patch_embed.proj.weight'), w('patch_embed.proj.bias')], {
    kernel_shape: [p, p],
    strides: [p, p],
  });
  const emb = g.op('Transpose', [g.op('Reshape', [conv, g.ints('shape_BD_', [0, D, -1])])], { perm: [0, 2, 1] });
  // CLS token expanded to [B, 1, D].
  const batch = g.op('Slice', [g.op('Shape', ['input']), g.ints('zero', [0]), g.ints('one', [1])]);
  const clsShape = g.op('Concat', [batch, g.ints('one_D', [1, D])], { axis: 0 });
  const cls = g.op('Expand', [w('cls_token'), clsShape]);
  let x = g.op('Add', [g.op('Concat', [cls, emb], { axis: 1 }), w('pos_embed')]);

  const qkvShape = g.ints('shape_qkv', [0, 0, 3, H, d]);
  const mergeShape = g.ints('shape_BND', [0, 0, D]);
  const scale = g.scalar('scale', geo.scale);
  const invSqrt2 = g.scalar('inv_sqrt2', Math.SQRT1_2);
  const half = g.scalar('half', 0.5);
  const oneF = g.scalar('one_f', 1);
  const axes0 = g.ints('axes0', [0]);
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}.`;
    const n1 = layerNorm(x, `${b}norm1`, cfg.norm_eps);
    // [B, N, 3D] → [B, N, 3, H, d] → [3, B, H, N, d]
    const qkv = g.op('Transpose', [g.op('Reshape', [linear(n1, `${b}attn.qkv`, cfg.qkv_bias), qkvShape])], {
      perm: [2, 0, 3, 1, 4],
    });
    const part = (j: number) => g.op('Gather', [qkv, g.ints(`${b}idx${j}`, [j])], { axis: 0 });
    const sq = (t: string) => g.op('Squeeze', [t, axes0]);
    const [q, k, v] = [0, 1, 2].map((j) => sq(part(j))) as [string, string, string];
    const kT = g.op('Transpose', [k], { perm: [0, 1, 3, 2] });
    const A = g.op('Softmax', [g.op('Mul', [g.op('MatMul', [q, kT]), scale])], { axis: -1 });
    const o = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [A, v])], { perm: [0, 2, 1, 3] }), mergeShape]);
    const h1 = g.op('Add', [x, linear(o, `${b}attn.proj`)]);
    const n2 = layerNorm(h1, `${b}norm2`, cfg.norm_eps);
    const z1 = linear(n2, `${b}mlp.fc1`);
    // Exact GELU as ops.ts writes it: z·0.5·(erf(z/√2) + 1).
    const gl = g.op('Mul', [g.op('Mul', [z1, half]), g.op('Add', [g.op('Erf', [g.op('Mul', [z1, invSqrt2])]), oneF])]);
    x = g.op('Add', [h1, linear(gl, `${b}mlp.fc2`)]);
  }
  // Final LayerNorm on the CLS token only (the same values as on all tokens, then the CLS row), then the head.
  const clsOut = g.op('Gather', [x, g.ints('cls_index', [0])], { axis: 1 }); // [B, 1, D]
  const pooled = g.op('Reshape', [clsOut, g.ints('shape_BD', [0, D])]);
  const normed = layerNorm(pooled, 'norm', cfg.final_norm_eps);
  linear(normed, 'head', true, 'logits');
  return encodeModel(g, cfg);
}

function encodeModel(g: Graph, cfg: VitConfig): Uint8Array {
  const graph = g.encode(
    cfg.name,
    [valueInfo('input', ['B', cfg.in_chans, cfg.img_size, cfg.img_size])],
    [valueInfo('logits', ['B', cfg.num_classes])],
  );
  return modelBytes(graph);
}

/**
 * A one-node model for float64 products: `c = MatMul(a, b)` with `a` double [G, M, K] and `b` [G, K, N] or [K, N],
 * double or (`b` 'float32') float32 cast to double inside the graph, so that float32 weights need no float64 copy.
 * All dimensions are dynamic. (src/engine/f64-matmul.ts.)
 */
export function matMulF64OnnxModel(b: 'float32' | 'float64'): Uint8Array {
  const g = new Graph();
  const bIn = b === 'float32' ? g.op('Cast', ['b'], { to: DOUBLE }) : 'b';
  g.op('MatMul', ['a', bIn], {}, 'c');
  const graph = g.encode(
    `matmul_f64_${b}`,
    [
      valueInfo('a', ['G', 'M', 'K'], DOUBLE),
      valueInfo('b', b === 'float32' ? ['K', 'N'] : ['G', 'K', 'N'], b === 'float32' ? FLOAT : DOUBLE),
    ],
    [valueInfo('c', ['G', 'M', 'N'], DOUBLE)],
  );
  return modelBytes(graph);
}

function modelBytes(graph: Msg): Uint8Array {
  return new Msg()
    .int(1, 8) // ir_version
    .str(2, 'bench scripts/onnx-vit.ts')
    .msg(7, graph)
    .msg(8, new Msg().str(1, '').int(2, 17))
    .encode();
}
