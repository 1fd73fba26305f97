/**
 * The BERT forward pass in float64, rounded once per stored value (`--forward f64`), as src/models/vit-f64.ts does
 * for the ViT: every product, LayerNorm, softmax, GELU and tanh in float64, then the trace `BertForSequenceClassification
 * .forward` records, each value rounded to float32 once, and the same values unrounded (`exact`) for the float64
 * backward and relevance passes (src/models/bert-backward-f64.ts, bert-relprop-f64.ts), whose denominators they are
 * (src/rules/common.ts, "Denominators from the forward pass"). The arithmetic is that of `forward` in
 * src/models/bert.ts, in the same order (token type + position, then word; a division by √d).
 */
import type { F64MatMul } from '../engine/f64-matmul.js';
import * as tf from '../engine/tf.js';
import type { BertForSequenceClassification, BertLayerTrace, BertTrace } from './bert.js';
import {
  add,
  addBias,
  f32,
  geluF64,
  type HostLinear,
  layerNorm,
  mergeHeads,
  oncePerModel,
  readLinear,
  readNorm,
  softmaxRows,
  splitHeads,
  transposeGroups,
} from './host-f64.js';

type LayerKey = Exclude<keyof BertLayerTrace, 'products'> | `${keyof BertLayerTrace['products']}P`;

/**
 * The float64 values the forward pass computed, unrounded, for the float64 backward and relevance passes
 * (src/models/bert-backward-f64.ts, bert-relprop-f64.ts); shapes and layouts as the float32 fields of HostBertTrace.
 */
export interface ExactBertTrace {
  embeddings: Float64Array;
  layers: Record<ExactLayerKey, Float64Array>[];
  out: Float64Array;
  cls: Float64Array;
  pooled: Float64Array;
  logits: Float64Array;
  /** The pooler's and the classifier's products without their biases (the relevance rules' denominators). */
  poolerP: Float64Array;
  classifierP: Float64Array;
  /** The additive mask (1 − attention_mask)·(−10000) per key position, [B, N]. */
  mask: Float64Array;
}

/**
 * Each layer's values kept in float64: the inputs of every step of the backward pass, and what the relevance rules
 * divide by (q·kᵀ, the scores and their masked sum, each Linear's product without its bias). Not kT.
 */
export type ExactLayerKey =
  | 'h'
  | 'q'
  | 'k'
  | 'v'
  | 'qk'
  | 'scores'
  | 'masked'
  | 'P'
  | 'ctx'
  | 'sa'
  | 'r1'
  | 'a'
  | 'z1'
  | 'g'
  | 'm'
  | 'r2'
  | `${keyof BertLayerTrace['products']}P`;

/** The trace's values as host arrays (float32, each rounded once from float64), shapes as in BertTrace. */
export interface HostBertTrace {
  batch: number;
  seqLen: number;
  embeddings: Float32Array;
  layers: Record<LayerKey, Float32Array>[];
  out: Float32Array;
  cls: Float32Array;
  pooled: Float32Array;
  logits: Float32Array;
  poolerP: Float32Array;
  classifierP: Float32Array;
  /** The same values before their rounding to float32 (the float64 backward pass's inputs). */
  exact: ExactBertTrace;
}

export interface HostBertWeights {
  word: Float32Array;
  position: Float32Array;
  tokenType: Float32Array;
  embNorm: [Float64Array, Float64Array];
  layers: {
    query: HostLinear;
    key: HostLinear;
    value: HostLinear;
    attnOut: HostLinear;
    attnNorm: [Float64Array, Float64Array];
    inter: HostLinear;
    out: HostLinear;
    outNorm: [Float64Array, Float64Array];
  }[];
  pooler: HostLinear;
  classifier: HostLinear;
}

/** The model's weights read back once per model (embedding tables and products' operands float32, vectors float64). */
export const bertHostWeights = oncePerModel(readWeights);

async function readWeights(model: BertForSequenceClassification): Promise<HostBertWeights> {
  const w = model.weights;
  const f32Of = async (t: tf.Tensor) => Float32Array.from((await t.data()) as Float32Array);
  const layers: HostBertWeights['layers'] = [];
  for (const l of w.layers)
    layers.push({
      query: await readLinear(l.query),
      key: await readLinear(l.key),
      value: await readLinear(l.value),
      attnOut: await readLinear(l.attnOut),
      attnNorm: await readNorm(l.attnNorm),
      inter: await readLinear(l.inter),
      out: await readLinear(l.out),
      outNorm: await readNorm(l.outNorm),
    });
  return {
    word: await f32Of(w.wordEmbeddings),
    position: await f32Of(w.positionEmbeddings),
    tokenType: await f32Of(w.tokenTypeEmbeddings),
    embNorm: await readNorm(w.embNorm),
    layers,
    pooler: await readLinear(w.pooler),
    classifier: await readLinear(w.classifier),
  };
}

/**
 * The forward trace of token ids [B, N] (row-major; mask 1 = token, 0 = padding, all ones when undefined;
 * token types 0 when undefined) in float64, each value rounded to float32 once. Inputs are checked by
 * `model.forward`'s own checks first.
 */
export async function bertForwardF64(
  model: BertForSequenceClassification,
  inputIds: Int32Array,
  attentionMask: Int32Array | undefined,
  B: number,
  N: number,
  matmul: F64MatMul,
  tokenTypeIds?: Int32Array,
): Promise<HostBertTrace> {
  const c = model.config;
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const d = model.headDim;
  const eps = c.layer_norm_eps;
  model.checkInputs(inputIds, attentionMask, tokenTypeIds, B, N);
  const w = await bertHostWeights(model);
  const lin = (x: Float64Array, l: HostLinear) => matmul(x, l.Wt, 1, x.length / l.inDim, l.inDim, l.outDim);

  // Embeddings: (token type + position) + word, then LayerNorm.
  const emb = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++) {
      const row = (b * N + n) * D;
      const id = inputIds[b * N + n]!;
      const tt = tokenTypeIds ? tokenTypeIds[b * N + n]! : 0;
      for (let j = 0; j < D; j++)
        emb[row + j] = w.tokenType[tt * D + j]! + w.position[n * D + j]! + w.word[id * D + j]!;
    }
  let x = layerNorm(emb, D, w.embNorm, eps);
  const embeddings = f32(x);
  // The additive mask (1 − m)·(−10000) per key position.
  const mask = new Float64Array(B * N);
  for (let i = 0; i < B * N; i++) mask[i] = attentionMask ? (1 - attentionMask[i]!) * -10000 : 0;
  const sqrtD = Math.sqrt(d);
  const layers: HostBertTrace['layers'] = [];
  const exactLayers: ExactBertTrace['layers'] = [];
  const embeddingsF64 = x;
  for (const lw of w.layers) {
    const h = x;
    const queryP = await lin(h, lw.query);
    const keyP = await lin(h, lw.key);
    const valueP = await lin(h, lw.value);
    const [q, k, v] = [queryP, keyP, valueP].map((p, i) =>
      splitHeads(addBias(p, [lw.query, lw.key, lw.value][i]!.b), B, H, N, d),
    ) as [Float64Array, Float64Array, Float64Array];
    const kT = transposeGroups(k, B * H, N, d);
    const qk = await matmul(q, kT, B * H, N, d, N);
    const scores = new Float64Array(qk.length);
    const masked = new Float64Array(qk.length);
    for (let g = 0; g < B * H; g++) {
      const b = Math.floor(g / H);
      for (let i = 0; i < N * N; i++) {
        const s = qk[g * N * N + i]! / sqrtD;
        scores[g * N * N + i] = s;
        masked[g * N * N + i] = s + mask[b * N + (i % N)]!;
      }
    }
    const P = Float64Array.from(masked);
    softmaxRows(P, N);
    const ctx = mergeHeads(await matmul(P, v, B * H, N, N, d), B, H, N, d);
    const attnOutP = await lin(ctx, lw.attnOut);
    const sa = addBias(attnOutP, lw.attnOut.b);
    const r1 = add(sa, h);
    const a = layerNorm(r1, D, lw.attnNorm, eps);
    const interP = await lin(a, lw.inter);
    const z1 = addBias(interP, lw.inter.b);
    const g = geluF64(z1);
    const outP = await lin(g, lw.out);
    const m = addBias(outP, lw.out.b);
    const r2 = add(m, a);
    x = layerNorm(r2, D, lw.outNorm, eps);
    const all = { h, q, k, kT, v, qk, scores, masked, P, ctx, sa, r1, a, z1, g, m, r2 };
    const products = { queryP, keyP, valueP, attnOutP, interP, outP };
    layers.push(
      Object.fromEntries(
        Object.entries({ ...all, ...products }).map(([key, val]) => [key, f32(val)]),
      ) as HostBertTrace['layers'][number],
    );
    exactLayers.push({ h, q, k, v, qk, scores, masked, P, ctx, sa, r1, a, z1, g, m, r2, ...products });
  }
  const cls = new Float64Array(B * D);
  for (let b = 0; b < B; b++) cls.set(x.subarray(b * N * D, b * N * D + D), b * D);
  const poolerP = await lin(cls, w.pooler);
  const pooled = addBias(poolerP, w.pooler.b).map(Math.tanh);
  const classifierP = await lin(pooled, w.classifier);
  const logits = addBias(classifierP, w.classifier.b);
  return {
    batch: B,
    seqLen: N,
    embeddings,
    layers,
    out: f32(x),
    cls: f32(cls),
    pooled: f32(pooled),
    logits: f32(logits),
    poolerP: f32(poolerP),
    classifierP: f32(classifierP),
    exact: { embeddings: embeddingsF64, layers: exactLayers, out: x, cls, pooled, logits, poolerP, classifierP, mask },
  };
}

/** The trace as tensors (call inside tf.tidy): what `BertForSequenceClassification.forward` returns. */
export function bertTraceFromHost(
  model: BertForSequenceClassification,
  host: HostBertTrace,
  attentionMask: Int32Array | undefined,
): BertTrace {
  const c = model.config;
  const { batch: B, seqLen: N } = host;
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const d = model.headDim;
  const I = c.intermediate_size;
  const mask = tf.tidy(() => {
    const m = attentionMask ? tf.tensor2d(attentionMask, [B, N], 'int32').toFloat() : tf.ones([B, N]);
    return tf.mul(tf.sub(1, m), -10000) as tf.Tensor2D;
  });
  const maskBH = tf.tidy(
    () => tf.reshape(tf.tile(tf.reshape(mask, [B, 1, N]), [1, H, 1]), [B * H, 1, N]) as tf.Tensor3D,
  );
  const t2 = (x: Float32Array, cols: number) => tf.tensor2d(x, [x.length / cols, cols]);
  const t3 = (x: Float32Array, r: number, cols: number) => tf.tensor3d(x, [B * H, r, cols]);
  return {
    batch: B,
    seqLen: N,
    mask,
    maskBH,
    embeddings: t2(host.embeddings, D),
    layers: host.layers.map((l) => ({
      h: t2(l.h, D),
      q: t3(l.q, N, d),
      k: t3(l.k, N, d),
      kT: t3(l.kT, d, N),
      v: t3(l.v, N, d),
      qk: t3(l.qk, N, N),
      scores: t3(l.scores, N, N),
      masked: t3(l.masked, N, N),
      P: t3(l.P, N, N),
      ctx: t2(l.ctx, D),
      sa: t2(l.sa, D),
      r1: t2(l.r1, D),
      a: t2(l.a, D),
      z1: t2(l.z1, I),
      g: t2(l.g, I),
      m: t2(l.m, D),
      r2: t2(l.r2, D),
      products: {
        query: t2(l.queryP, D),
        key: t2(l.keyP, D),
        value: t2(l.valueP, D),
        attnOut: t2(l.attnOutP, D),
        inter: t2(l.interP, I),
        out: t2(l.outP, D),
      },
    })),
    out: t2(host.out, D),
    cls: t2(host.cls, D),
    pooled: t2(host.pooled, D),
    logits: t2(host.logits, c.num_labels),
    products: { pooler: t2(host.poolerP, D), classifier: t2(host.classifierP, c.num_labels) },
  };
}
