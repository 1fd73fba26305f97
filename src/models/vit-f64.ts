/**
 * The ViT forward pass in float64, rounded once per stored value: the "precise forward" (`--forward f64`).
 *
 * Why: the wasm backend's matmul accumulates in float32 as the official PyTorch code does, so both carry the same
 * kind of noise, and the ill-conditioned methods (full LRP, and the 'ours' rule's shared denominators) amplify it.
 * With every forward product, LayerNorm, softmax and GELU computed in float64 and each stored value rounded to float32
 * once, and the backward and relevance passes run in float64 on these values too (vit-backward-f64.ts,
 * vit-relprop-f64.ts, driven by src/methods/float64-passes.ts), every method of the paper is as close to the float64
 * truth as float32 can hold it (results/precision/README.md).
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
  geluF64,
  type HostLinear,
  layerNorm,
  mergeHeads,
  oncePerModel,
  readF64,
  readLinear,
  readNorm,
  softmaxRows,
  transposeGroups,
} from './host-f64.js';
import type { BlockTrace, HeadOutput, VisionTransformer, VitTrace } from './vit.js';

type BlockKey = Exclude<keyof BlockTrace, 'products'> | 'qkvP' | 'projP' | 'fc1P' | 'fc2P';

/** A forward trace's values as host arrays of one precision, shapes as in VitTrace. */
interface VitTraceValues<A extends Float32Array | Float64Array> {
  patches: A;
  patchProduct: A;
  tokens: A;
  blocks: Record<BlockKey, A>[];
  out: A;
  /** The final LayerNorm of the CLS rows and the classifier, once per tail (its eps, quirk Q1), [B, D] and [B, C]. */
  heads: Record<'lrp' | 'classifier', { pooled: A; product: A; logits: A }>;
}

/** The trace's values as host arrays (float32, each rounded once from float64), shapes as in VitTrace. */
export interface HostVitTrace extends VitTraceValues<Float32Array> {
  batch: number;
}

export interface HostWeights {
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
export const vitHostWeights = oncePerModel(readWeights);

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
 * One sample's forward pass in float64, unrounded: what the float64 relevance pass (src/models/vit-relprop-f64.ts)
 * reads. Shapes as in HostVitTrace for a batch of one; `input` is the sample's normalised input [C, H, W].
 */
export interface ExactVitSample extends VitTraceValues<Float64Array> {
  input: Float64Array;
}

/**
 * The forward trace of `input` (normalised [B, C, H, W], row-major; float32 values, or float64 ones from
 * normalizeCHWF64) in float64, each value rounded to float32 once. The samples run one at a time; `each`, when given,
 * sees each sample's unrounded pass before it is dropped (a batch of ViT-B/16 passes in float64 would hold ≈ 350 MB
 * per image).
 */
export async function vitForwardF64(
  model: VisionTransformer,
  input: Float32Array | Float64Array,
  B: number,
  matmul: F64MatMul,
  each?: (sample: ExactVitSample, b: number) => Promise<void>,
): Promise<HostVitTrace> {
  const w = await vitHostWeights(model);
  const per = input.length / B;
  const host = { batch: B, blocks: [] as Record<string, Float32Array>[], heads: { lrp: {}, classifier: {} } } as Record<
    string,
    unknown
  >;
  // Each value rounded once into its sample's slot of the batch array.
  const put = (target: Record<string, unknown>, key: string, v: Float64Array, b: number) => {
    let t = target[key] as Float32Array | undefined;
    if (!t) {
      t = new Float32Array(B * v.length);
      target[key] = t;
    }
    t.set(v, b * v.length);
  };
  for (let b = 0; b < B; b++) {
    const sample = await forwardSample(model, w, Float64Array.from(input.subarray(b * per, (b + 1) * per)), matmul);
    for (const key of ['patches', 'patchProduct', 'tokens', 'out'] as const) put(host, key, sample[key], b);
    sample.blocks.forEach((blk, l) => {
      const hb = host.blocks as Record<string, Float32Array>[];
      hb[l] ??= {};
      for (const [key, v] of Object.entries(blk)) put(hb[l]!, key, v, b);
    });
    for (const tail of ['lrp', 'classifier'] as const)
      for (const [key, v] of Object.entries(sample.heads[tail]))
        put((host.heads as Record<string, Record<string, unknown>>)[tail]!, key, v, b);
    await each?.(sample, b);
  }
  return host as unknown as HostVitTrace;
}

/** One sample's forward pass in float64 (`input`: its normalised [C, H, W]). */
async function forwardSample(
  model: VisionTransformer,
  w: HostWeights,
  input: Float64Array,
  matmul: F64MatMul,
): Promise<ExactVitSample> {
  const c = model.config;
  const { numTokens: N, numPatches: P, headDim: d, scale } = model.geo;
  const D = c.embed_dim;
  const H = c.num_heads;
  const p = c.patch_size;
  const C = c.in_chans;
  const gw = c.img_size / p;
  const lin = async (x: Float64Array, l: HostLinear) => matmul(x, l.Wt, 1, x.length / l.inDim, l.inDim, l.outDim);

  // im2col: row = patch in row-major grid order, columns (channel, row, col).
  const cols = C * p * p;
  const patches = new Float64Array(P * cols);
  const S = c.img_size;
  for (let pi = 0; pi < P; pi++) {
    const gy = Math.floor(pi / gw);
    const gx = pi % gw;
    const row = pi * cols;
    for (let ch = 0; ch < C; ch++)
      for (let y = 0; y < p; y++)
        for (let x = 0; x < p; x++)
          patches[row + (ch * p + y) * p + x] = input[(ch * S + gy * p + y) * S + gx * p + x]!;
  }
  const patchProduct = await lin(patches, w.patch);
  const emb = addBias(patchProduct, w.patch.b);
  const tokens = new Float64Array(N * D);
  tokens.set(w.cls, 0);
  tokens.set(emb, D);
  let x: Float64Array = new Float64Array(tokens.length);
  for (let i = 0; i < x.length; i++) x[i] = tokens[i]! + w.pos[i]!;

  const blocks: ExactVitSample['blocks'] = [];
  for (const bw of w.blocks) {
    const n1 = layerNorm(x, D, bw.ln1, c.norm_eps);
    const qkvP = await lin(n1, bw.qkv);
    const qkv = addBias(qkvP, bw.qkv.b);
    // [N, 3D] → q, k, v as [H, N, d]; kT as [H, d, N].
    const q = new Float64Array(H * N * d);
    const k = new Float64Array(q.length);
    const v = new Float64Array(q.length);
    for (let n = 0; n < N; n++) {
      const row = n * 3 * D;
      for (let h = 0; h < H; h++)
        for (let j = 0; j < d; j++) {
          const t = (h * N + n) * d + j;
          q[t] = qkv[row + h * d + j]!;
          k[t] = qkv[row + D + h * d + j]!;
          v[t] = qkv[row + 2 * D + h * d + j]!;
        }
    }
    const kT = transposeGroups(k, H, N, d);
    const scores = await matmul(q, kT, H, N, d, N);
    const A = new Float64Array(scores.length);
    for (let i = 0; i < A.length; i++) A[i] = scores[i]! * scale;
    softmaxRows(A, N);
    const oh = await matmul(A, v, H, N, N, d);
    const o = mergeHeads(oh, 1, H, N, d);
    const projP = await lin(o, bw.proj);
    const a = addBias(projP, bw.proj.b);
    const h1 = add(x, a);
    const n2 = layerNorm(h1, D, bw.ln2, c.norm_eps);
    const fc1P = await lin(n2, bw.fc1);
    const z1 = addBias(fc1P, bw.fc1.b);
    const g = geluF64(z1);
    const fc2P = await lin(g, bw.fc2);
    const m = addBias(fc2P, bw.fc2.b);
    blocks.push({ x, n1, q, k, kT, v, scores, A, o, a, qkvP, projP, fc1P, fc2P, h1, n2, z1, g, m });
    x = add(h1, m);
  }
  const cls = x.slice(0, D);
  const head = async (eps: number) => {
    const pooled = layerNorm(cls, D, w.norm, eps);
    const product = await lin(pooled, w.head);
    return { pooled, product, logits: addBias(product, w.head.b) };
  };
  return {
    input,
    patches,
    patchProduct,
    tokens,
    blocks,
    out: x,
    heads: { lrp: await head(c.lrp_final_norm_eps), classifier: await head(c.final_norm_eps) },
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
