/**
 * The ViT classifier (logits only, the perturbation test's pass) as an ONNX model, written from our state dict
 * (timm names, src/models/vit-weights.ts) with src/formats/onnx-writer.ts, and run on onnxruntime-node
 * (src/engine/onnx.ts; `bench perturb --classifier-engine`).
 *
 * The graph does what `VisionTransformer.logits` does (src/models/vit.ts), op for op where ONNX allows: the
 * patch-embedding conv, CLS concat, position add, pre-norm blocks (LayerNormalization, qkv MatMul + bias, scaled
 * dot-product softmax attention, proj, exact erf GELU MLP), final LayerNorm on the CLS token with
 * `final_norm_eps`, head. Input `input` [B, C, H, W] (normalised), output `logits` [B, classes]; B is dynamic.
 * Opset 17 (LayerNormalization), IR version 8.
 */
import { loadOnnxRuntime, type Ort, ortSession } from '../engine/onnx.js';
import type { StateDict } from '../formats/host-tensor.js';
import { Graph, modelBytes, valueInfo } from '../formats/onnx-writer.js';
import type { VisionTransformer } from './vit.js';
import { geometry, type VitConfig } from './vit-config.js';
import { expectedVitKeys } from './vit-weights.js';

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
  return modelBytes(graph, 'bench src/models/onnx-vit.ts');
}

/** The state dict (timm names) of a loaded model, read back from its tensors. */
export function vitStateDict(model: VisionTransformer): StateDict {
  const c = model.config;
  const w = model.weights;
  const sd: StateDict = new Map();
  const keys = expectedVitKeys(c);
  const put = (k: string, t: { dataSync(): unknown }) => {
    sd.set(k, { shape: keys.get(k)!, data: Float32Array.from(t.dataSync() as Float32Array) });
  };
  put('cls_token', w.clsToken);
  put('pos_embed', w.posEmbed);
  put('patch_embed.proj.weight', w.patchEmbed.W);
  put('patch_embed.proj.bias', w.patchEmbed.b!);
  w.blocks.forEach((b, i) => {
    const p = `blocks.${i}.`;
    put(`${p}norm1.weight`, b.norm1.gamma);
    put(`${p}norm1.bias`, b.norm1.beta);
    put(`${p}attn.qkv.weight`, b.qkv.W);
    if (b.qkv.b) put(`${p}attn.qkv.bias`, b.qkv.b);
    put(`${p}attn.proj.weight`, b.proj.W);
    put(`${p}attn.proj.bias`, b.proj.b!);
    put(`${p}norm2.weight`, b.norm2.gamma);
    put(`${p}norm2.bias`, b.norm2.beta);
    put(`${p}mlp.fc1.weight`, b.fc1.W);
    put(`${p}mlp.fc1.bias`, b.fc1.b!);
    put(`${p}mlp.fc2.weight`, b.fc2.W);
    put(`${p}mlp.fc2.bias`, b.fc2.b!);
  });
  put('norm.weight', w.norm.gamma);
  put('norm.bias', w.norm.beta);
  put('head.weight', w.head.W);
  put('head.bias', w.head.b!);
  return sd;
}

/**
 * The classifier of `config` with weights `sd` on onnxruntime (one intra-op thread: parallelism comes from
 * `--workers`): normalised batch [B, C, H, W] → logits [B, classes], the `final_norm_eps` head as
 * `VisionTransformer.logits`.
 */
export async function onnxVitClassifier(
  ort: Ort,
  config: VitConfig,
  sd: StateDict,
  threads = 1,
): Promise<(batch: Float32Array, b: number) => Promise<Float32Array>> {
  const session = await ortSession(ort, vitOnnxModel(config, sd), threads);
  const c = config;
  return async (batch, b) => {
    const x = new ort.Tensor('float32', batch, [b, c.in_chans, c.img_size, c.img_size]);
    return (await session.run({ input: x })).logits!.data;
  };
}

/** The onnxruntime classifier of a loaded model (its weights read back), or an Error naming how to install it. */
export async function onnxClassifierFor(
  model: VisionTransformer,
): Promise<(batch: Float32Array, b: number) => Promise<Float32Array>> {
  const { ort, error } = loadOnnxRuntime();
  if (!ort) throw new Error(error);
  return onnxVitClassifier(ort, model.config, vitStateDict(model));
}
