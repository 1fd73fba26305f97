import { bmm, gelu, geluGrad, layerNorm, layerNormBackward, tT } from '../engine/ops.js';
import * as tf from '../engine/tf.js';
import { cloneRule, poolRule, productRule, productTransposedRule, zBoxRule } from '../rules/common.js';
import type { RuleSet } from '../rules/types.js';
import type { AttentionGradients } from './gradients.js';
import { setSignedCaching } from './linear.js';
import { type Geometry, geometry, type VitConfig } from './vit-config.js';
import { lnParams, type VitBlockWeights, type VitWeights } from './vit-weights.js';

/**
 * ViT / DeiT (timm layout, pre-norm blocks; docs/methods.md#the-vit-model), written once for every method:
 *  - `forward` records what the backward pass and the relevance rules need (a trace);
 *  - `head` applies the final LayerNorm and the classifier with a given eps, because the reference's
 *    LRP model files use 1e-5 there while the plain classifier uses 1e-6 (quirk Q1): the blocks are
 *    shared, only this cheap tail is computed twice;
 *  - `attentionGradients` is a hand-written backward pass that stops at the shallowest block a method
 *    needs and uses only plain 2-D products (fast on wasm);
 *  - `relprop` walks the layers from the head down and asks a RuleSet how relevance crosses each one.
 * Tokens are kept as 2-D [B·N, D] matrices so every Linear is one plain matmul; attention tensors are
 * [B·H, N, ·] with sample-major, head-minor order.
 */
export interface BlockTrace {
  x: tf.Tensor2D; // block input [BN, D]
  n1: tf.Tensor2D;
  q: tf.Tensor3D; // [BH, N, d]
  k: tf.Tensor3D;
  kT: tf.Tensor3D; // [BH, d, N]
  v: tf.Tensor3D;
  scores: tf.Tensor3D; // q·kᵀ before the scale [BH, N, N]
  A: tf.Tensor3D; // softmax attention [BH, N, N]
  o: tf.Tensor2D; // merged head outputs [BN, D]
  a: tf.Tensor2D; // attention branch output
  /** Each Linear's forward product without its bias (n1·Wqkvᵀ, o·Wprojᵀ, n2·Wfc1ᵀ, g·Wfc2ᵀ), kept for the 'ours' rule. */
  products: { qkv: tf.Tensor2D; proj: tf.Tensor2D; fc1: tf.Tensor2D; fc2: tf.Tensor2D };
  h1: tf.Tensor2D;
  n2: tf.Tensor2D;
  z1: tf.Tensor2D; // fc1 pre-activation [BN, hidden]
  g: tf.Tensor2D; // GELU output
  m: tf.Tensor2D; // MLP branch output
}

export interface VitTrace {
  batch: number;
  /** Normalised input [B, C, H, W]. */
  input: tf.Tensor4D;
  /** im2col patches [B·P, C·p·p], row = patch in row-major grid order, columns in (channel, row, col). */
  patches: tf.Tensor2D;
  /** The patch embedding's product patches·Wᵀ, without its bias [B·P, D]. */
  patchProduct: tf.Tensor2D;
  /** Token embeddings after the CLS concat, before the position add [B, N, D]. */
  tokens: tf.Tensor3D;
  blocks: BlockTrace[];
  /** Output of the last block [BN, D]. */
  out: tf.Tensor2D;
}

export interface HeadOutput {
  /** Final-norm output of the CLS token [B, D] (the classifier's input). */
  pooled: tf.Tensor2D;
  /** pooled·Wᵀ, the classifier's product without its bias [B, C] (the relevance rules' denominator). */
  product: tf.Tensor2D;
  logits: tf.Tensor2D;
}

export interface RelpropResult {
  /** Relevance of the attention probabilities per block (after the reference's halving), [BH, N, N]. */
  attnCam: (tf.Tensor3D | undefined)[];
  /** Pixel relevance summed over channels [B, H, W], when propagated to the input. */
  pixels?: tf.Tensor3D;
}

export class VisionTransformer {
  readonly geo: Geometry;

  constructor(
    readonly config: VitConfig,
    readonly weights: VitWeights,
  ) {
    this.geo = geometry(config);
    setSignedCaching([
      weights.patchEmbed,
      weights.head,
      ...weights.blocks.flatMap((b) => [b.qkv, b.proj, b.fc1, b.fc2]),
    ]);
  }

  get depth(): number {
    return this.config.depth;
  }

  /** input: normalised [B, C, H, W]. Must be called inside tf.tidy (or its trace disposed by the caller). */
  forward(input: tf.Tensor4D): VitTrace {
    const { B, patches, patchProduct, tokens, x: x0 } = this.embed(input);
    let x = x0;
    const blocks: BlockTrace[] = [];
    for (const bw of this.weights.blocks) {
      const inp = x;
      const { out, ...rest } = this.block(bw, inp, B);
      blocks.push({ x: inp, ...rest });
      x = out;
    }
    return { batch: B, input, patches, patchProduct, tokens, blocks, out: x };
  }

  /**
   * The logits of `head(forward(input), eps)`, computed by the same operations in the same order (so the
   * same numbers), without keeping the trace: each block's intermediates are freed once the next block has
   * its input, so a batch needs the memory of one block, not of all of them. For classifier-only passes
   * (the perturbation test): with the trace, a ViT-B/16 batch of 16 holds ≈ 2.4 GB of intermediates and
   * overruns the wasm heap.
   */
  logits(input: tf.Tensor4D, eps: number): tf.Tensor2D {
    return tf.tidy(() => {
      const { B, x: x0 } = this.embed(input);
      let x = x0;
      for (const bw of this.weights.blocks) {
        const { out, products, ...rest } = this.block(bw, x, B);
        tf.dispose([...Object.values(rest), ...Object.values(products), x]);
        x = out;
      }
      const pooled = layerNorm(this.clsRows(x, B), lnParams(this.weights.norm, eps));
      return this.weights.head.forward(pooled);
    });
  }

  /** Patch embedding, CLS token and position embedding: the tokens [B·N, D] the first block takes. */
  private embed(input: tf.Tensor4D): {
    B: number;
    patches: tf.Tensor2D;
    patchProduct: tf.Tensor2D;
    tokens: tf.Tensor3D;
    x: tf.Tensor2D;
  } {
    const c = this.config;
    const [B, C, H, W] = input.shape;
    if (C !== c.in_chans || H !== c.img_size || W !== c.img_size) {
      throw new Error(
        `input shape [${input.shape}] does not match the model (expected [B, ${c.in_chans}, ${c.img_size}, ${c.img_size}])`,
      );
    }
    const D = c.embed_dim;
    const w = this.weights;
    const patches = im2col(input, c.patch_size);
    const patchProduct = w.patchEmbed.product(patches);
    const emb = tf.reshape(withBias(patchProduct, w.patchEmbed.b), [B, this.geo.numPatches, D]);
    const cls = tf.tile(tf.reshape(w.clsToken, [1, 1, D]), [B, 1, 1]);
    const tokens = tf.concat([cls, emb], 1) as tf.Tensor3D;
    const x = tf.reshape(tf.add(tokens, w.posEmbed), [B * this.geo.numTokens, D]) as tf.Tensor2D;
    return { B, patches, patchProduct, tokens, x };
  }

  /** One transformer block on tokens `inp` [B·N, D]: its trace (what the relevance passes need) and output. */
  private block(bw: VitBlockWeights, inp: tf.Tensor2D, B: number): Omit<BlockTrace, 'x'> & { out: tf.Tensor2D } {
    const c = this.config;
    const { numTokens: N, headDim: d } = this.geo;
    const D = c.embed_dim;
    const Hh = c.num_heads;
    return tf.tidy(() => {
      const n1 = layerNorm(inp, lnParams(bw.norm1, c.norm_eps));
      const products = { qkv: bw.qkv.product(n1) } as BlockTrace['products'];
      const qkv = withBias(products.qkv, bw.qkv.b);
      const [q, k, v] = [0, 1, 2].map((part) =>
        splitHeads(tf.slice(qkv, [0, part * D], [-1, D]) as tf.Tensor2D, B, Hh, N, d),
      ) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      const kT = tT(k);
      const scores = bmm(q, kT);
      const A = tf.softmax(tf.mul(scores, this.geo.scale)) as tf.Tensor3D;
      const o = mergeHeads(bmm(A, v), B, Hh, N, d);
      products.proj = bw.proj.product(o);
      const a = withBias(products.proj, bw.proj.b);
      const h1 = tf.add(inp, a) as tf.Tensor2D;
      const n2 = layerNorm(h1, lnParams(bw.norm2, c.norm_eps));
      products.fc1 = bw.fc1.product(n2);
      const z1 = withBias(products.fc1, bw.fc1.b);
      const g = gelu(z1);
      products.fc2 = bw.fc2.product(g);
      const m = withBias(products.fc2, bw.fc2.b);
      return { n1, q, k, kT, v, scores, A, o, a, products, h1, n2, z1, g, m, out: tf.add(h1, m) as tf.Tensor2D };
    }) as unknown as Omit<BlockTrace, 'x'> & { out: tf.Tensor2D };
  }

  /** Final LayerNorm (with the given eps) on the CLS token, then the classifier. */
  head(trace: VitTrace, eps: number): HeadOutput {
    const pooled = layerNorm(this.clsRows(trace.out, trace.batch), lnParams(this.weights.norm, eps));
    const product = this.weights.head.product(pooled);
    return { pooled, product, logits: withBias(product, this.weights.head.b) };
  }

  /**
   * ∂⟨logits, seed⟩/∂A_l for blocks l = depth−1 … downTo (entries of shallower blocks are undefined),
   * where the logits come from `head(trace, eps)`. seed: [B, C], usually one-hot rows. downTo 'input': through
   * every block, and also the gradient at block 0's input (the embeddings after the position add).
   */
  attentionGradients(trace: VitTrace, eps: number, seed: tf.Tensor2D, downTo: number | 'input'): AttentionGradients {
    const c = this.config;
    const { numTokens: N, headDim: d } = this.geo;
    const B = trace.batch;
    const Hh = c.num_heads;
    const w = this.weights;
    const grads: (tf.Tensor3D | undefined)[] = new Array(c.depth).fill(undefined);
    const clsIn = this.clsRows(trace.out, B);
    const gCls = layerNormBackward(clsIn, w.head.backward(seed), lnParams(w.norm, eps));
    let gx = this.scatterCls(gCls, B);
    const lowest = downTo === 'input' ? 0 : downTo;
    for (let l = c.depth - 1; l >= lowest; l--) {
      const t = trace.blocks[l]!;
      const bw = w.blocks[l]!;
      const last = l === downTo;
      // One scope per block, so a deep pass holds only what it carries to the next block.
      const [gA, gxNext] = tf.tidy(() => {
        // MLP branch: out = h1 + fc2(gelu(fc1(LN2(h1)))).
        const gz1 = tf.mul(bw.fc2.backward(gx), geluGrad(t.z1)) as tf.Tensor2D;
        const gh1 = tf.add(
          gx,
          layerNormBackward(t.h1, bw.fc1.backward(gz1), lnParams(bw.norm2, c.norm_eps)),
        ) as tf.Tensor2D;
        // Attention branch: h1 = x + proj(merge(A·v)).
        const go = splitHeads(bw.proj.backward(gh1), B, Hh, N, d);
        const gA = bmm(go, tT(t.v));
        if (last) return [gA];
        const gv = bmm(tT(t.A), go);
        const gDots = tf.mul(tf.mul(t.A, tf.sub(gA, tf.sum(tf.mul(gA, t.A), -1, true))), this.geo.scale) as tf.Tensor3D;
        const gq = bmm(gDots, t.k);
        const gk = bmm(tT(gDots), t.q);
        const gqkv = mergeQkv(gq, gk, gv, B, Hh, N, d);
        return [gA, tf.add(gh1, layerNormBackward(t.x, bw.qkv.backward(gqkv), lnParams(bw.norm1, c.norm_eps)))];
      }) as [tf.Tensor3D, tf.Tensor2D | undefined];
      grads[l] = gA;
      gx.dispose();
      if (last) break;
      gx = gxNext!;
    }
    // downTo 'input': gx is now the gradient at block 0's input, the token embeddings after the position add.
    return { attn: grads, input: downTo === 'input' ? gx : undefined };
  }

  /**
   * Relevance propagation (docs/methods.md#vit-relevance-walk) from `seed` [B, C] at the logits of `head`, down to
   * the attention of block `stop` (inclusive; the rest of that block is not visited) or, with stop = 'pixels',
   * through every block, the position add and the zᴮ patch embedding to the input pixels.
   */
  relprop(
    trace: VitTrace,
    head: HeadOutput,
    seed: tf.Tensor2D,
    rules: RuleSet,
    stop: number | 'pixels',
  ): RelpropResult {
    const c = this.config;
    const { numTokens: N, headDim: d } = this.geo;
    const B = trace.batch;
    const D = c.embed_dim;
    const Hh = c.num_heads;
    const w = this.weights;
    const attnCam: (tf.Tensor3D | undefined)[] = new Array(c.depth).fill(undefined);
    const rPooled = rules.linear(w.head, head.pooled, seed, head.product);
    let R = this.scatterCls(poolRule(head.pooled, rPooled), B); // the final norm is an identity
    const perSample = (t: tf.Tensor) => tf.reshape(t, [B, -1]);
    const stopBlock = stop === 'pixels' ? 0 : stop;
    for (let l = c.depth - 1; l >= stopBlock; l--) {
      const t = trace.blocks[l]!;
      const bw = w.blocks[l]!;
      const last = l === stop;
      // One scope per block, so a deep pass holds only what it carries to the next block.
      const [rA, rNext] = tf.tidy(() => {
        // Each rule divides by its layer's output as the forward pass computed it (rules/common.ts).
        const out = l + 1 < c.depth ? trace.blocks[l + 1]!.x : trace.out;
        const [rRes2, rM] = rules.add(perSample(t.h1), perSample(t.m), perSample(R), perSample(out));
        const rG = rules.linear(bw.fc2, t.g, tf.reshape(rM, t.m.shape), t.products.fc2);
        const rN2 = rules.linear(bw.fc1, t.n2, rG, t.products.fc1); // GELU and LayerNorm are identities
        const rH1 = cloneRule(t.h1, [tf.reshape(rRes2, t.h1.shape), rN2]);
        const [rRes1, rAttn] = rules.add(perSample(t.x), perSample(t.a), perSample(rH1), perSample(t.h1));
        const rO = splitHeads(rules.linear(bw.proj, t.o, tf.reshape(rAttn, t.a.shape), t.products.proj), B, Hh, N, d);
        const [rA, rV] = productRule(t.A, t.v, rO, splitHeads(t.o, B, Hh, N, d)).map(
          (r) => tf.mul(r, 0.5) as tf.Tensor3D,
        ) as [tf.Tensor3D, tf.Tensor3D];
        if (last) return [rA];
        // Softmax and the score scale are identities for relevance (quirk Q7).
        const [rQ, rK] = productTransposedRule(t.q, t.k, t.kT, rA, t.scores).map(
          (r) => tf.mul(r, 0.5) as tf.Tensor3D,
        ) as [tf.Tensor3D, tf.Tensor3D];
        const rN1 = rules.linear(bw.qkv, t.n1, mergeQkv(rQ, rK, rV, B, Hh, N, d), t.products.qkv);
        return [rA, cloneRule(t.x, [tf.reshape(rRes1, t.x.shape), rN1])];
      }) as [tf.Tensor3D, tf.Tensor2D | undefined];
      attnCam[l] = rA;
      R.dispose();
      if (last) return { attnCam };
      R = rNext!;
    }
    // Position add, then the patch embedding; the CLS token's and pos_embed's shares are dropped (Q30).
    const [rTok] = rules.add(
      trace.tokens,
      tf.reshape(w.posEmbed, [1, N, D]),
      tf.reshape(R, [B, N, D]),
      tf.reshape(trace.blocks[0]!.x, [B, N, D]),
    );
    const P = this.geo.numPatches;
    const rPatches = tf.reshape(tf.slice(rTok, [0, 1, 0], [B, P, D]), [B * P, D]) as tf.Tensor2D;
    const flat = tf.reshape(trace.input, [B, -1]);
    const rowsPerSample = (v: tf.Tensor) =>
      tf.reshape(tf.tile(tf.reshape(v, [B, 1]), [1, P]), [B * P, 1]) as tf.Tensor2D;
    const rIn = zBoxRule(
      w.patchEmbed,
      trace.patches,
      rPatches,
      rowsPerSample(tf.min(flat, 1)),
      rowsPerSample(tf.max(flat, 1)),
      trace.patchProduct,
    );
    const { grid } = this.geo;
    const _p = c.patch_size;
    const image = col2im(rIn, B, c.in_chans, grid, c.patch_size);
    return { attnCam, pixels: tf.sum(image, 1) as tf.Tensor3D };
  }

  /** Rows of token 0 of each sample: [BN, D] → [B, D]. */
  private clsRows(x: tf.Tensor2D, B: number): tf.Tensor2D {
    const { numTokens: N } = this.geo;
    return tf.reshape(tf.slice(tf.reshape(x, [B, N, -1]), [0, 0, 0], [B, 1, -1]), [B, -1]) as tf.Tensor2D;
  }

  /** [B, D] at token 0 → [BN, D] with zeros at every other token. */
  private scatterCls(v: tf.Tensor2D, B: number): tf.Tensor2D {
    const { numTokens: N } = this.geo;
    const D = v.shape[1];
    return tf.reshape(tf.concat([tf.reshape(v, [B, 1, D]), tf.zeros([B, N - 1, D])], 1), [B * N, D]) as tf.Tensor2D;
  }
}

function withBias(xW: tf.Tensor2D, b: tf.Tensor1D | undefined): tf.Tensor2D {
  return b ? (tf.add(xW, b) as tf.Tensor2D) : xW;
}

/** [BH, N, d] → [BN, H·d] (the reference's `b h n d -> b n (h d)`). */
function mergeHeads(x: tf.Tensor3D, B: number, H: number, N: number, d: number): tf.Tensor2D {
  return tf.reshape(tf.transpose(tf.reshape(x, [B, H, N, d]), [0, 2, 1, 3]), [B * N, H * d]) as tf.Tensor2D;
}

/** [BN, H·d] → [BH, N, d]. */
function splitHeads(x: tf.Tensor2D, B: number, H: number, N: number, d: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(x, [B, N, H, d]), [0, 2, 1, 3]), [B * H, N, d]) as tf.Tensor3D;
}

/** Inverse of the qkv split: three [BH, N, d] → [BN, 3·H·d] with feature order (qkv, head, dim). */
function mergeQkv(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  B: number,
  H: number,
  N: number,
  d: number,
): tf.Tensor2D {
  return tf.concat(
    [q, k, v].map((t) => mergeHeads(t, B, H, N, d)),
    1,
  ) as tf.Tensor2D;
}

/*
 * Patches as rows, in the conv's (channel, row, col) order. Written as two 4-D transposes: the wasm
 * backend's 6-D transpose is ~15× slower (7 ms vs 0.4 ms for one 224×224 image).
 */

/** [B, C, H, W] → [B·gh·gw, C·p·p]. */
function im2col(x: tf.Tensor4D, p: number): tf.Tensor2D {
  const [B, C, H, W] = x.shape;
  const gh = H / p;
  const gw = W / p;
  const rows = tf.transpose(tf.reshape(x, [B * C * gh, p, gw, p]), [0, 2, 1, 3]); // [B·C·gh, gw, p, p]
  return tf.reshape(tf.transpose(tf.reshape(rows, [B, C, gh * gw, p * p]), [0, 2, 1, 3]), [
    B * gh * gw,
    C * p * p,
  ]) as tf.Tensor2D;
}

/** Inverse of im2col: [B·gh·gw, C·p·p] → [B, C, gh·p, gw·p]. */
function col2im(cols: tf.Tensor2D, B: number, C: number, grid: [number, number], p: number): tf.Tensor4D {
  const [gh, gw] = grid;
  const perChannel = tf.transpose(tf.reshape(cols, [B, gh * gw, C, p * p]), [0, 2, 1, 3]); // [B, C, gh·gw, p·p]
  const rows = tf.transpose(tf.reshape(perChannel, [B * C * gh, gw, p, p]), [0, 2, 1, 3]); // [B·C·gh, p, gw, p]
  return tf.reshape(rows, [B, C, gh * p, gw * p]) as tf.Tensor4D;
}
