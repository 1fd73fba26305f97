/**
 * The ViT forward pass in float64, rounded once per stored value: the "precise forward" (`--forward f64`).
 *
 * Why: measured on the golden cases (results/precision/README.md), the distance of our maps to the official
 * float64 maps comes almost entirely from the forward pass's float32 products. The wasm backend's matmul
 * accumulates in float32 as the official PyTorch code does, so both carry the same kind of noise, and the
 * ill-conditioned methods (full LRP, and the 'ours' rule's shared denominators) amplify it. With every forward
 * product, LayerNorm, softmax and GELU computed in float64 and each stored value rounded to float32 once, every
 * method of the paper comes closer to the float64 truth than the official float32 code on the S1 goldens and on
 * 167 of the 168 maps of the held-out geometries, while the backward and relevance passes stay on the tfjs backend
 * (on S1, float64 products there changed nothing measurable; the one geometry map left is full LRP's).
 *
 * The products run through an `F64MatMul` (src/engine/f64-matmul.ts): onnxruntime-node's double GEMM when it is
 * installed, else plain JavaScript (slow for ViT-B-sized models). The weights are read back once per model into
 * host memory (the float32 matrices as they are: ViT-B/16 about 330 MiB more). The arithmetic is that of
 * `VisionTransformer.forward` (src/models/vit.ts): the same trace, value for value up to the rounding.
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import * as tf from '../engine/tf.js';
import {
  add,
  addBias,
  f32,
  geluF64,
  type HostLinear,
  layerNorm,
  mergeHeads,
  oncePerModel,
  readF64,
  readLinear,
  readNorm,
  softmaxRows,
} from './host-f64.js';
import type { BlockTrace, HeadOutput, VisionTransformer, VitTrace } from './vit.js';

/** The trace's values as host arrays (float32, each rounded once from float64), shapes as in VitTrace. */
export interface HostVitTrace {
  batch: number;
  patches: Float32Array;
  patchProduct: Float32Array;
  tokens: Float32Array;
  blocks: Record<Exclude<keyof BlockTrace, 'products'> | 'qkvP' | 'projP' | 'fc1P' | 'fc2P', Float32Array>[];
  out: Float32Array;
  /** The final LayerNorm of the CLS rows and the classifier, once per tail (its eps, quirk Q1), [B, D] and [B, C]. */
  heads: Record<'lrp' | 'classifier', { pooled: Float32Array; product: Float32Array; logits: Float32Array }>;
}

interface HostWeights {
  cls: Float64Array;
  pos: Float64Array;
  patch: HostLinear;
  blocks: {
    ln1: [Float64Array, Float64Array];
    qkv: HostLinear;
    proj: HostLinear;
    ln2: [Float64Array, Float64Array];
    fc1: HostLinear;
    fc2: HostLinear;
  }[];
  norm: [Float64Array, Float64Array];
  head: HostLinear;
}

/**
 * The model's weights read back once (the products' float32 operands kept float32; vectors as float64). Read
 * asynchronously: the webgpu backend has no synchronous read in Node.
 */
const weightsOf = oncePerModel(readWeights);

async function readWeights(model: VisionTransformer): Promise<HostWeights> {
  const mw = model.weights;
  const blocks: HostWeights['blocks'] = [];
  for (const b of mw.blocks)
    blocks.push({
      ln1: await readNorm(b.norm1),
      qkv: await readLinear(b.qkv),
      proj: await readLinear(b.proj),
      ln2: await readNorm(b.norm2),
      fc1: await readLinear(b.fc1),
      fc2: await readLinear(b.fc2),
    });
  return {
    cls: await readF64(mw.clsToken),
    pos: await readF64(mw.posEmbed),
    patch: await readLinear(mw.patchEmbed),
    blocks,
    norm: await readNorm(mw.norm),
    head: await readLinear(mw.head),
  };
}

/**
 * The forward trace of `input` (normalised [B, C, H, W], row-major; float32 values, or float64 ones from
 * normalizeCHWF64) in float64, each value rounded to float32 once.
 */
export async function vitForwardF64(
  model: VisionTransformer,
  input: Float32Array | Float64Array,
  B: number,
  matmul: F64MatMul,
): Promise<HostVitTrace> {
  const c = model.config;
  const { numTokens: N, numPatches: P, headDim: d, scale } = model.geo;
  const D = c.embed_dim;
  const H = c.num_heads;
  const p = c.patch_size;
  const C = c.in_chans;
  const gw = c.img_size / p;
  const w = await weightsOf(model);
  const lin = async (x: Float64Array, l: HostLinear) => matmul(x, l.Wt, 1, x.length / l.inDim, l.inDim, l.outDim);

  // im2col: row = patch in row-major grid order, columns (channel, row, col).
  const cols = C * p * p;
  const patches = new Float64Array(B * P * cols);
  const S = c.img_size;
  for (let b = 0; b < B; b++)
    for (let pi = 0; pi < P; pi++) {
      const gy = Math.floor(pi / gw);
      const gx = pi % gw;
      const row = (b * P + pi) * cols;
      for (let ch = 0; ch < C; ch++)
        for (let y = 0; y < p; y++)
          for (let x = 0; x < p; x++)
            patches[row + (ch * p + y) * p + x] = input[((b * C + ch) * S + gy * p + y) * S + gx * p + x]!;
    }
  const patchProduct = await lin(patches, w.patch);
  const emb = addBias(patchProduct, w.patch.b);
  const tokens = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++) {
    tokens.set(w.cls, b * N * D);
    tokens.set(emb.subarray(b * P * D, (b + 1) * P * D), b * N * D + D);
  }
  let x: Float64Array = new Float64Array(tokens.length);
  for (let i = 0; i < x.length; i++) x[i] = tokens[i]! + w.pos[i % (N * D)]!;

  const blocks: HostVitTrace['blocks'] = [];
  for (const bw of w.blocks) {
    const n1 = layerNorm(x, D, bw.ln1, c.norm_eps);
    const qkvP = await lin(n1, bw.qkv);
    const qkv = addBias(qkvP, bw.qkv.b);
    // [BN, 3D] → q, k, v as [BH, N, d]; kT as [BH, d, N].
    const q = new Float64Array(B * H * N * d);
    const k = new Float64Array(q.length);
    const v = new Float64Array(q.length);
    const kT = new Float64Array(q.length);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++) {
        const row = (b * N + n) * 3 * D;
        for (let h = 0; h < H; h++)
          for (let j = 0; j < d; j++) {
            const t = ((b * H + h) * N + n) * d + j;
            q[t] = qkv[row + h * d + j]!;
            k[t] = qkv[row + D + h * d + j]!;
            v[t] = qkv[row + 2 * D + h * d + j]!;
            kT[((b * H + h) * d + j) * N + n] = k[t]!;
          }
      }
    const scores = await matmul(q, kT, B * H, N, d, N);
    const A = new Float64Array(scores.length);
    for (let i = 0; i < A.length; i++) A[i] = scores[i]! * scale;
    softmaxRows(A, N);
    const oh = await matmul(A, v, B * H, N, N, d);
    const o = mergeHeads(oh, B, H, N, d);
    const projP = await lin(o, bw.proj);
    const a = addBias(projP, bw.proj.b);
    const h1 = add(x, a);
    const n2 = layerNorm(h1, D, bw.ln2, c.norm_eps);
    const fc1P = await lin(n2, bw.fc1);
    const z1 = addBias(fc1P, bw.fc1.b);
    const g = geluF64(z1);
    const fc2P = await lin(g, bw.fc2);
    const m = addBias(fc2P, bw.fc2.b);
    const out = add(h1, m);
    blocks.push({
      x: f32(x),
      n1: f32(n1),
      q: f32(q),
      k: f32(k),
      kT: f32(kT),
      v: f32(v),
      scores: f32(scores),
      A: f32(A),
      o: f32(o),
      a: f32(a),
      qkvP: f32(qkvP),
      projP: f32(projP),
      fc1P: f32(fc1P),
      fc2P: f32(fc2P),
      h1: f32(h1),
      n2: f32(n2),
      z1: f32(z1),
      g: f32(g),
      m: f32(m),
    });
    x = out;
  }
  const cls = new Float64Array(B * D);
  for (let b = 0; b < B; b++) cls.set(x.subarray(b * N * D, b * N * D + D), b * D);
  const head = async (eps: number) => {
    const pooled = layerNorm(cls, D, w.norm, eps);
    const product = await lin(pooled, w.head);
    return { pooled: f32(pooled), product: f32(product), logits: f32(addBias(product, w.head.b)) };
  };
  return {
    batch: B,
    heads: { lrp: await head(c.lrp_final_norm_eps), classifier: await head(c.final_norm_eps) },
    patches: f32(patches),
    patchProduct: f32(patchProduct),
    tokens: f32(tokens),
    blocks,
    out: f32(x),
  };
}

/** The two classifier tails as tensors (call inside tf.tidy): what `VisionTransformer.head` returns for each. */
export function headsFromHost(host: HostVitTrace): Record<'lrp' | 'classifier', HeadOutput> {
  const B = host.batch;
  const tail = (h: HostVitTrace['heads']['lrp']): HeadOutput => ({
    pooled: tf.tensor2d(h.pooled, [B, h.pooled.length / B]),
    product: tf.tensor2d(h.product, [B, h.product.length / B]),
    logits: tf.tensor2d(h.logits, [B, h.logits.length / B]),
  });
  return { lrp: tail(host.heads.lrp), classifier: tail(host.heads.classifier) };
}

/** The trace as tensors (call inside tf.tidy): what `VisionTransformer.forward(input)` returns. */
export function traceFromHost(model: VisionTransformer, host: HostVitTrace, input: tf.Tensor4D): VitTrace {
  const c = model.config;
  const { numTokens: N, headDim: d } = model.geo;
  const B = host.batch;
  const D = c.embed_dim;
  const BH = B * c.num_heads;
  const hid = model.weights.blocks[0]?.fc1.Wt.shape[1] ?? 0;
  const t2 = (x: Float32Array, cols: number) => tf.tensor2d(x, [x.length / cols, cols]);
  const t3 = (x: Float32Array, r: number, cols: number) => tf.tensor3d(x, [BH, r, cols]);
  return {
    batch: B,
    input,
    patches: t2(host.patches, c.in_chans * c.patch_size * c.patch_size),
    patchProduct: t2(host.patchProduct, D),
    tokens: tf.tensor3d(host.tokens, [B, N, D]),
    blocks: host.blocks.map((b) => ({
      x: t2(b.x, D),
      n1: t2(b.n1, D),
      q: t3(b.q, N, d),
      k: t3(b.k, N, d),
      kT: t3(b.kT, d, N),
      v: t3(b.v, N, d),
      scores: t3(b.scores, N, N),
      A: t3(b.A, N, N),
      o: t2(b.o, D),
      a: t2(b.a, D),
      products: { qkv: t2(b.qkvP, 3 * D), proj: t2(b.projP, D), fc1: t2(b.fc1P, hid), fc2: t2(b.fc2P, D) },
      h1: t2(b.h1, D),
      n2: t2(b.n2, D),
      z1: t2(b.z1, hid),
      g: t2(b.g, hid),
      m: t2(b.m, D),
    })),
    out: t2(host.out, D),
  };
}
