import { bmm, gelu, geluGrad, type LayerNormParams, layerNorm, layerNormBackward, tT } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import { cloneRule, poolRule, productRule, productTransposedRule } from '../rules/common.js';
import type { RuleSet } from '../rules/types.js';
import { type BertConfig, bertHeadDim } from './bert-config.js';
import type { BertWeights, LayerNormWeights } from './bert-weights.js';
import type { AttentionGradients } from './gradients.js';
import { setSignedCaching } from './linear.js';

/**
 * BERT for sequence classification as in the reference's `BERT.py` / `BertForSequenceClassification.py`
 * (HF transformers 3.5.1, post-norm layers; docs/methods.md#bert-model, #bert-relevance-walk), built like the ViT:
 *  - `forward` records what the backward pass and the relevance rules need (a trace);
 *  - `attentionGradients` is a hand-written backward pass (plain 2-D products) down to a chosen layer;
 *  - `relprop` walks the layers from the classifier down and asks a RuleSet how relevance crosses each one.
 * Tokens are 2-D [B·N, D] matrices; attention tensors are [B·H, N, N], sample-major, head-minor.
 */
export interface BertLayerTrace {
  h: tf.Tensor2D; // layer input [BN, D]
  q: tf.Tensor3D; // [BH, N, d]
  k: tf.Tensor3D;
  kT: tf.Tensor3D; // [BH, d, N]
  v: tf.Tensor3D;
  /** q·kᵀ [BH, N, N]. */
  qk: tf.Tensor3D;
  /** (q·kᵀ)/√d, before the mask add [BH, N, N]. */
  scores: tf.Tensor3D;
  /** scores + mask, the softmax's input [BH, N, N]. */
  masked: tf.Tensor3D;
  /** softmax(scores + mask) [BH, N, N]. */
  P: tf.Tensor3D;
  ctx: tf.Tensor2D; // merged heads P·v [BN, D]
  sa: tf.Tensor2D; // BertSelfOutput dense(ctx)
  r1: tf.Tensor2D; // sa + h (LayerNorm input)
  a: tf.Tensor2D; // attention output LN(sa + h)
  z1: tf.Tensor2D; // intermediate pre-activation [BN, I]
  g: tf.Tensor2D; // GELU output
  m: tf.Tensor2D; // BertOutput dense(g) [BN, D]
  r2: tf.Tensor2D; // m + a (LayerNorm input)
  /** Each Linear's product without its bias, kept for the relevance rules' denominators (rules/common.ts). */
  products: Record<'query' | 'key' | 'value' | 'attnOut' | 'inter' | 'out', tf.Tensor2D>;
}

export interface BertTrace {
  batch: number;
  seqLen: number;
  /** Additive extended mask (1 − attention_mask)·(−10000), [B, N]. */
  mask: tf.Tensor2D;
  /** The same per attention row block, [BH, 1, N] (broadcasts against the scores). */
  maskBH: tf.Tensor3D;
  /** Embedding output (hidden_states[0]) [BN, D]. */
  embeddings: tf.Tensor2D;
  layers: BertLayerTrace[];
  /** Output of the last layer [BN, D]. */
  out: tf.Tensor2D;
  /** h_L[:, 0], the pooler's input [B, D]. */
  cls: tf.Tensor2D;
  /** tanh(dense(cls)), the classifier's input [B, D]. */
  pooled: tf.Tensor2D;
  logits: tf.Tensor2D;
  /** The pooler's and the classifier's products without their biases. */
  products: { pooler: tf.Tensor2D; classifier: tf.Tensor2D };
}

export interface BertRelpropResult {
  /** Relevance of the attention probabilities per layer (after the reference's halving), [BH, N, N]. */
  attnCam: (tf.Tensor3D | undefined)[];
  /** Relevance at the input of layer 0 (the embedding output), [B, N, D], when propagated that far. */
  input?: tf.Tensor3D;
}

export class BertForSequenceClassification {
  readonly headDim: number;

  constructor(
    readonly config: BertConfig,
    readonly weights: BertWeights,
  ) {
    this.headDim = bertHeadDim(config);
    setSignedCaching([
      weights.pooler,
      weights.classifier,
      ...weights.layers.flatMap((l) => [l.query, l.key, l.value, l.attnOut, l.inter, l.out]),
    ]);
  }

  get depth(): number {
    return this.config.num_hidden_layers;
  }

  get numLabels(): number {
    return this.config.num_labels;
  }

  /**
   * inputIds, attentionMask (1 = token, 0 = padding; all ones when undefined) and tokenTypeIds (zeros
   * when undefined): row-major [batch, seqLen]. Must be called inside tf.tidy (or its trace disposed by
   * the caller).
   */
  forward(
    inputIds: Int32Array,
    attentionMask: Int32Array | undefined,
    batch: number,
    seqLen: number,
    tokenTypeIds?: Int32Array,
  ): BertTrace {
    const c = this.config;
    const B = batch;
    const N = seqLen;
    const D = c.hidden_size;
    const Hh = c.num_attention_heads;
    const d = this.headDim;
    this.checkInputs(inputIds, attentionMask, tokenTypeIds, B, N);
    const w = this.weights;
    const BN = B * N;
    const embeddings = tf.tidy(() => {
      const word = tf.gather(w.wordEmbeddings, tf.tensor1d(inputIds, 'int32'));
      const pos = tf.tile(tf.slice(w.positionEmbeddings, [0, 0], [N, D]), [B, 1]);
      const tt = tokenTypeIds
        ? tf.gather(w.tokenTypeEmbeddings, tf.tensor1d(tokenTypeIds, 'int32'))
        : tf.tile(tf.slice(w.tokenTypeEmbeddings, [0, 0], [1, D]), [BN, 1]);
      // The reference's summation order: (token_type + position) + word.
      return layerNorm(tf.add(tf.add(tt, pos), word) as tf.Tensor2D, ln(w.embNorm, c.layer_norm_eps));
    });
    const mask = tf.tidy(() => {
      const m = attentionMask ? tf.tensor2d(attentionMask, [B, N], 'int32').toFloat() : tf.ones([B, N]);
      return tf.mul(tf.sub(1, m), -10000) as tf.Tensor2D;
    });
    const maskBH = tf.tidy(
      () => tf.reshape(tf.tile(tf.reshape(mask, [B, 1, N]), [1, Hh, 1]), [B * Hh, 1, N]) as tf.Tensor3D,
    );
    const sqrtD = Math.sqrt(d);
    let x = embeddings;
    const layers: BertLayerTrace[] = [];
    for (const lw of w.layers) {
      const h = x;
      const layer = tf.tidy(() => {
        const products = {
          query: lw.query.product(h),
          key: lw.key.product(h),
          value: lw.value.product(h),
        } as BertLayerTrace['products'];
        const q = splitHeads(withBias(products.query, lw.query.b), B, Hh, N, d);
        const k = splitHeads(withBias(products.key, lw.key.b), B, Hh, N, d);
        const v = splitHeads(withBias(products.value, lw.value.b), B, Hh, N, d);
        const kT = tT(k);
        const qk = bmm(q, kT);
        const scores = tf.div(qk, sqrtD) as tf.Tensor3D; // a division, as the reference (Q28)
        const masked = tf.add(scores, maskBH) as tf.Tensor3D;
        const P = tf.softmax(masked) as tf.Tensor3D;
        const ctx = mergeHeads(bmm(P, v), B, Hh, N, d);
        products.attnOut = lw.attnOut.product(ctx);
        const sa = withBias(products.attnOut, lw.attnOut.b);
        const r1 = tf.add(sa, h) as tf.Tensor2D;
        const a = layerNorm(r1, ln(lw.attnNorm, c.layer_norm_eps));
        products.inter = lw.inter.product(a);
        const z1 = withBias(products.inter, lw.inter.b);
        const g = gelu(z1);
        products.out = lw.out.product(g);
        const m = withBias(products.out, lw.out.b);
        const r2 = tf.add(m, a) as tf.Tensor2D;
        return {
          q,
          k,
          kT,
          v,
          qk,
          scores,
          masked,
          P,
          ctx,
          sa,
          r1,
          a,
          z1,
          g,
          m,
          r2,
          products,
          out: layerNorm(r2, ln(lw.outNorm, c.layer_norm_eps)),
        };
      }) as unknown as Omit<BertLayerTrace, 'h'> & { out: tf.Tensor2D };
      const { out, ...rest } = layer;
      layers.push({ h, ...rest });
      x = out;
    }
    const cls = clsRows(x, B, N);
    const poolerP = w.pooler.product(cls);
    const pooled = tf.tidy(() => tf.tanh(withBias(poolerP, w.pooler.b)) as tf.Tensor2D);
    const classifierP = w.classifier.product(pooled);
    const logits = withBias(classifierP, w.classifier.b);
    const products = { pooler: poolerP, classifier: classifierP };
    return { batch: B, seqLen: N, mask, maskBH, embeddings, layers, out: x, cls, pooled, logits, products };
  }

  logits(trace: BertTrace): tf.Tensor2D {
    return trace.logits;
  }

  /** HF's hidden_states: the embedding output, then every layer's output, each [BN, D]. */
  hiddenStates(trace: BertTrace): tf.Tensor2D[] {
    return [...trace.layers.map((l) => l.h), trace.out];
  }

  /**
   * ∂⟨logits, seed⟩/∂P_l for layers l = depth−1 … downTo (entries of shallower layers are undefined).
   * seed: [B, C], usually one-hot rows. The mask add passes the gradient to the scores unchanged. downTo 'input':
   * through every layer, and also the gradient at the embedding output (layer 0's input).
   */
  attentionGradients(trace: BertTrace, seed: tf.Tensor2D, downTo: number | 'input'): AttentionGradients {
    const c = this.config;
    const B = trace.batch;
    const N = trace.seqLen;
    const Hh = c.num_attention_heads;
    const d = this.headDim;
    const w = this.weights;
    const lowest = downTo === 'input' ? 0 : downTo;
    checkLayer(lowest, c.num_hidden_layers);
    const grads: (tf.Tensor3D | undefined)[] = new Array(c.num_hidden_layers).fill(undefined);
    let gx = tf.tidy(() => {
      const gPooled = w.classifier.backward(seed);
      const gPre = tf.mul(gPooled, tf.sub(1, tf.square(trace.pooled))) as tf.Tensor2D; // tanh'
      return scatterCls(w.pooler.backward(gPre), B, N);
    });
    const sqrtD = Math.sqrt(d);
    for (let l = c.num_hidden_layers - 1; l >= lowest; l--) {
      const t = trace.layers[l]!;
      const lw = w.layers[l]!;
      const last = l === downTo;
      // One scope per layer, so a deep pass holds only what it carries to the next layer.
      const [gP, gxNext] = tf.tidy(() => {
        // out = LN(out.dense(gelu(inter(a))) + a).
        const gr2 = layerNormBackward(t.r2, gx, ln(lw.outNorm, c.layer_norm_eps));
        const gz1 = tf.mul(lw.out.backward(gr2), geluGrad(t.z1)) as tf.Tensor2D;
        const ga = tf.add(gr2, lw.inter.backward(gz1)) as tf.Tensor2D;
        // a = LN(attnOut(ctx) + h).
        const gr1 = layerNormBackward(t.r1, ga, ln(lw.attnNorm, c.layer_norm_eps));
        const gctx = splitHeads(lw.attnOut.backward(gr1), B, Hh, N, d);
        const gP = bmm(gctx, tT(t.v));
        if (last) return [gP];
        const gv = bmm(tT(t.P), gctx);
        // softmax backward; the mask add is transparent; then the division by √d.
        const gScores = tf.mul(t.P, tf.sub(gP, tf.sum(tf.mul(gP, t.P), -1, true)));
        const gDots = tf.div(gScores, sqrtD) as tf.Tensor3D;
        const gq = bmm(gDots, t.k);
        const gk = bmm(tT(gDots), t.q);
        const gh = tf.addN([
          gr1,
          lw.query.backward(mergeHeads(gq, B, Hh, N, d)),
          lw.key.backward(mergeHeads(gk, B, Hh, N, d)),
          lw.value.backward(mergeHeads(gv, B, Hh, N, d)),
        ]) as tf.Tensor2D;
        return [gP, gh];
      }) as [tf.Tensor3D, tf.Tensor2D | undefined];
      grads[l] = gP;
      gx.dispose();
      if (last) break;
      gx = gxNext!;
    }
    // downTo 'input': gx is now the gradient at the embedding output (hidden_states[0]).
    return { attn: grads, input: downTo === 'input' ? gx : undefined };
  }

  /**
   * Relevance propagation (docs/methods.md#bert-relevance-walk) from `seed` [B, C] at the logits, down to the
   * attention relevance of layer `stop` (inclusive; the rest of that layer is not visited) or, with stop = 'input',
   * through every layer to the input of layer 0 (there is no relprop through the embeddings).
   */
  relprop(trace: BertTrace, seed: tf.Tensor2D, rules: RuleSet, stop: number | 'input'): BertRelpropResult {
    const c = this.config;
    const B = trace.batch;
    const N = trace.seqLen;
    const D = c.hidden_size;
    const Hh = c.num_attention_heads;
    const d = this.headDim;
    const w = this.weights;
    const stopLayer = stop === 'input' ? 0 : stop;
    checkLayer(stopLayer, c.num_hidden_layers);
    const attnCam: (tf.Tensor3D | undefined)[] = new Array(c.num_hidden_layers).fill(undefined);
    // classifier (X = pooled output after tanh) → tanh (identity) → pooler dense (X = h_L[:, 0]) → pool.
    let R = tf.tidy(() => {
      // Each rule divides by its layer's output as the forward pass computed it (rules/common.ts).
      const rPooled = rules.linear(w.classifier, trace.pooled, seed, trace.products.classifier);
      const rCls = rules.linear(w.pooler, trace.cls, rPooled, trace.products.pooler);
      return scatterCls(poolRule(trace.cls, rCls), B, N);
    });
    const perSample = (t: tf.Tensor) => tf.reshape(t, [B, -1]);
    for (let l = c.num_hidden_layers - 1; l >= stopLayer; l--) {
      const t = trace.layers[l]!;
      const lw = w.layers[l]!;
      const last = l === stop;
      // One scope per layer, so a deep pass holds only what it carries to the next layer.
      const [rP, rNext] = tf.tidy(() => {
        // BertOutput: LN (identity) → Add [dense₂ output, a] → dense₂ (X = GELU output) → GELU (identity)
        // → dense₁ (X = a); then the Clone of a.
        const [rM, rRes2] = rules.add(perSample(t.m), perSample(t.a), perSample(R), perSample(t.r2));
        const rG = rules.linear(lw.out, t.g, tf.reshape(rM, t.m.shape), t.products.out);
        const rA1 = rules.linear(lw.inter, t.a, rG, t.products.inter);
        const rA = cloneRule(t.a, [rA1, tf.reshape(rRes2, t.a.shape)]) as tf.Tensor2D;
        // BertSelfOutput: LN (identity) → Add [dense(ctx), h] → dense (X = ctx).
        const [rSa, rRes1] = rules.add(perSample(t.sa), perSample(t.h), perSample(rA), perSample(t.r1));
        const rCtx = splitHeads(
          rules.linear(lw.attnOut, t.ctx, tf.reshape(rSa, t.sa.shape), t.products.attnOut),
          B,
          Hh,
          N,
          d,
        );
        // matmul2 (P·v), both halves ÷2; attn_cam = R_P.
        const [rP, rV] = productRule(t.P, t.v, rCtx, splitHeads(t.ctx, B, Hh, N, d)).map(
          (r) => tf.mul(r, 0.5) as tf.Tensor3D,
        ) as [tf.Tensor3D, tf.Tensor3D];
        if (last) return [rP];
        // softmax (identity) → Add [scores, mask]: keep the scores' share. The mask is passed with its
        // broadcast shape (B, 1, 1, N) against (B, H, N, N), so the mask share's total (used by the "ours"
        // rescaling) is Σ m_j·S_hij over the broadcast shape, as in the reference.
        const [rS] = rules.add(
          tf.reshape(t.scores, [B, Hh, N, N]),
          tf.reshape(trace.mask, [B, 1, 1, N]),
          tf.reshape(rP, [B, Hh, N, N]),
          tf.reshape(t.masked, [B, Hh, N, N]),
        );
        // The /√d is not a module: the scores' relevance is that of q·kᵀ. matmul1 on (q, kᵀ), halves ÷2.
        const [rQ, rK] = productTransposedRule(t.q, t.k, t.kT, tf.reshape(rS, rP.shape) as tf.Tensor3D, t.qk).map(
          (r) => tf.mul(r, 0.5) as tf.Tensor3D,
        ) as [tf.Tensor3D, tf.Tensor3D];
        const rHq = rules.linear(lw.query, t.h, mergeHeads(rQ, B, Hh, N, d), t.products.query);
        const rHk = rules.linear(lw.key, t.h, mergeHeads(rK, B, Hh, N, d), t.products.key);
        const rHv = rules.linear(lw.value, t.h, mergeHeads(rV, B, Hh, N, d), t.products.value);
        const rSelf = cloneRule(t.h, [rHq, rHk, rHv]);
        // BertAttention's Clone of h: (self-attention branch, residual share).
        return [rP, cloneRule(t.h, [rSelf, tf.reshape(rRes1, t.h.shape)]) as tf.Tensor2D];
      }) as [tf.Tensor3D, tf.Tensor2D | undefined];
      attnCam[l] = rP;
      R.dispose();
      if (last) return { attnCam };
      R = rNext!;
    }
    return { attnCam, input: tf.reshape(R, [B, N, D]) as tf.Tensor3D };
  }

  /** The checks `forward` makes of its inputs (also made by the float64 forward, src/models/bert-f64.ts). */
  checkInputs(
    ids: Int32Array,
    mask: Int32Array | undefined,
    types: Int32Array | undefined,
    B: number,
    N: number,
  ): void {
    const c = this.config;
    if (!Number.isInteger(B) || B <= 0 || !Number.isInteger(N) || N <= 0) {
      throw new Error(`batch and sequence length must be positive integers, found ${B} and ${N}`);
    }
    if (N > c.max_position_embeddings) {
      throw new Error(`sequence length ${N} exceeds the model's max_position_embeddings ${c.max_position_embeddings}`);
    }
    const n = B * N;
    for (const [name, a] of [
      ['input_ids', ids],
      ['attention_mask', mask],
      ['token_type_ids', types],
    ] as const) {
      if (a && a.length !== n) throw new Error(`${name} has ${a.length} entries, expected ${B}×${N} = ${n}`);
    }
    const bad = ids.findIndex((v) => v < 0 || v >= c.vocab_size);
    if (bad >= 0) throw new Error(`input_ids[${bad}] = ${ids[bad]} is outside the vocabulary [0, ${c.vocab_size})`);
    const badType = types ? types.findIndex((v) => v < 0 || v >= c.type_vocab_size) : -1;
    if (badType >= 0) {
      throw new Error(`token_type_ids[${badType}] = ${types![badType]} is outside [0, ${c.type_vocab_size})`);
    }
  }
}

function withBias(xW: tf.Tensor2D, b: tf.Tensor1D | undefined): tf.Tensor2D {
  return b ? (tf.add(xW, b) as tf.Tensor2D) : xW;
}

function ln(n: LayerNormWeights, eps: number): LayerNormParams {
  return { gamma: n.gamma, beta: n.beta, eps };
}

/** A layer index the passes can stop at (also checked by the float64 passes, bert-backward-f64.ts, bert-relprop-f64.ts). */
export function checkLayer(l: number, depth: number): void {
  if (!Number.isInteger(l) || l < 0 || l >= depth) {
    throw new Error(`layer ${l} is out of range: the model has ${depth} layers`);
  }
}

/** Rows of token 0 of each sample: [BN, D] → [B, D]. */
function clsRows(x: tf.Tensor2D, B: number, N: number): tf.Tensor2D {
  return tf.tidy(() => tf.reshape(tf.slice(tf.reshape(x, [B, N, -1]), [0, 0, 0], [B, 1, -1]), [B, -1]) as tf.Tensor2D);
}

/** [B, D] at token 0 → [BN, D] with zeros at every other token. */
function scatterCls(v: tf.Tensor2D, B: number, N: number): tf.Tensor2D {
  return tf.tidy(() => {
    const D = v.shape[1];
    if (N === 1) return tf.clone(v);
    return tf.reshape(tf.concat([tf.reshape(v, [B, 1, D]), tf.zeros([B, N - 1, D])], 1), [B * N, D]) as tf.Tensor2D;
  });
}

/** [BH, N, d] → [BN, H·d] (HF's permute(0, 2, 1, 3) + view). */
function mergeHeads(x: tf.Tensor3D, B: number, H: number, N: number, d: number): tf.Tensor2D {
  return tf.reshape(tf.transpose(tf.reshape(x, [B, H, N, d]), [0, 2, 1, 3]), [B * N, H * d]) as tf.Tensor2D;
}

/** [BN, H·d] → [BH, N, d] (HF's transpose_for_scores; head h = features [h·d, (h+1)·d)). */
function splitHeads(x: tf.Tensor2D, B: number, H: number, N: number, d: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(x, [B, N, H, d]), [0, 2, 1, 3]), [B * H, N, d]) as tf.Tensor3D;
}
