import type * as tf from '@tensorflow/tfjs';
import * as tfjs from '../engine/tf.js';
import type { BertForSequenceClassification } from '../models/bert.js';
import { bertTraceFromHost, type HostBertTrace } from '../models/bert-f64.js';
import type { AttentionGradients } from '../models/gradients.js';
import type { HostMaps } from '../models/host-f64.js';
import type { VisionTransformer } from '../models/vit.js';
import { type HostVitTrace, headsFromHost, traceFromHost } from '../models/vit-f64.js';
import type { RuleSet, RuleSetName } from '../rules/types.js';
import type { HeadKind } from './types.js';

/**
 * What the explanation methods need from a model, whatever its family: one forward pass already run,
 * and the ability to run the backward and relevance passes on it. The methods stay model-agnostic
 * except for the final read-out of a map, which differs between the reference's ViT and BERT code
 * (see each method file).
 */
export type ModelFamily = 'vit' | 'bert';

export interface ModelPass {
  readonly family: ModelFamily;
  readonly depth: number;
  readonly numHeads: number;
  readonly numClasses: number;
  readonly batch: number;
  /** Logits of a classifier tail (ViT: final LayerNorm eps differs per tail, quirk Q1; BERT: one tail). */
  logits(head: HeadKind): tf.Tensor2D;
  /** Attention probabilities of block l, [B·H, N, N]. */
  attention(l: number): tf.Tensor3D;
  /** The first block's input [B·N, D] (ViT: token embeddings after the position add; BERT: the embedding output). */
  embeddings(): tf.Tensor2D;
  /** ∂⟨logits of `head`, seed⟩/∂A_l down to block `downTo`, or through every block to the embeddings ('input'). */
  attentionGradients(head: HeadKind, seed: tf.Tensor2D, downTo: number | 'input'): AttentionGradients;
  /**
   * Relevance from `seed` at the logits down to block `stop`'s attention, or through everything
   * ('input': ViT → pixel relevance [B, H, W]; BERT → relevance at the encoder input [B, N, D]).
   */
  relprop(
    seed: tf.Tensor2D,
    rules: RuleSet,
    stop: number | 'input',
  ): { attnCam: (tf.Tensor3D | undefined)[]; input?: tf.Tensor };
}

/**
 * Backward passes (per classifier tail) and relevance passes (per rule set) computed beforehand on the host in float64
 * (src/methods/float64-passes.ts) for the PassContext's seeds, one-hot rows at the classes it was given. A ModelPass
 * serves a pass from here when it has one as deep as asked for, and runs it on the backend otherwise.
 */
export interface HostPasses {
  gradients: Partial<Record<HeadKind, HostMaps>>;
  relevance: Partial<Record<RuleSetName, HostMaps>>;
}

export interface ModelInfo {
  family: ModelFamily;
  depth: number;
}

/**
 * A ViT pass over a normalised batch [B, C, H, W]; with `host`, its forward trace computed beforehand in float64
 * (src/models/vit-f64.ts). Call inside tf.tidy.
 */
export function vitPass(
  model: VisionTransformer,
  input: tf.Tensor4D,
  host?: HostVitTrace,
  passes?: HostPasses,
): ModelPass {
  const c = model.config;
  const trace = host ? traceFromHost(model, host, input) : model.forward(input);
  const heads = host
    ? headsFromHost(host)
    : { lrp: model.head(trace, c.lrp_final_norm_eps), classifier: model.head(trace, c.final_norm_eps) };
  const eps = (head: HeadKind) => (head === 'lrp' ? c.lrp_final_norm_eps : c.final_norm_eps);
  const B = trace.batch;
  return {
    family: 'vit',
    depth: c.depth,
    numHeads: c.num_heads,
    numClasses: c.num_classes,
    batch: trace.batch,
    logits: (head) => heads[head].logits,
    attention: (l) => trace.blocks[l]!.A,
    embeddings: () => trace.blocks[0]!.x,
    attentionGradients: (head, seed, downTo) => {
      const h = passes?.gradients[head];
      if (h?.to === downTo) return gradientsFromHost(h, trace.blocks[0]!.A.shape, [trace.blocks[0]!.x.shape[1]]);
      return model.attentionGradients(trace, eps(head), seed, downTo);
    },
    relprop: (seed, rules, stop) => {
      const h = passes?.relevance[rules.name];
      if (h?.to === stop) return relevanceFromHost(h, trace.blocks[0]!.A.shape, [B, c.img_size, c.img_size]);
      // Relevance always starts at the LRP model files' tail (their class is the one explained).
      const r = model.relprop(trace, heads.lrp, seed, rules, stop === 'input' ? 'pixels' : stop);
      return { attnCam: r.attnCam, input: r.pixels };
    },
  };
}

/**
 * A BERT pass over token ids [B, N] with an attention mask; with `host`, its forward trace computed beforehand in
 * float64 (src/models/bert-f64.ts). Call inside tf.tidy.
 */
export function bertPass(
  model: BertForSequenceClassification,
  inputIds: Int32Array,
  attentionMask: Int32Array | undefined,
  batch: number,
  seqLen: number,
  host?: HostBertTrace,
  passes?: HostPasses,
): ModelPass {
  const trace = host
    ? bertTraceFromHost(model, host, attentionMask)
    : model.forward(inputIds, attentionMask, batch, seqLen);
  const logits = model.logits(trace);
  return {
    family: 'bert',
    depth: model.depth,
    numHeads: model.config.num_attention_heads,
    numClasses: model.numLabels,
    batch,
    // Both reference model files (ours / orig LRP) share one forward: one tail.
    logits: () => logits,
    attention: (l) => trace.layers[l]!.P,
    embeddings: () => trace.embeddings,
    attentionGradients: (head, seed, downTo) => {
      const h = passes?.gradients[head];
      if (h?.to === downTo) return gradientsFromHost(h, trace.layers[0]!.P.shape, [model.config.hidden_size]);
      return model.attentionGradients(trace, seed, downTo);
    },
    relprop: (seed, rules, stop) => {
      const h = passes?.relevance[rules.name];
      if (h?.to === stop)
        return relevanceFromHost(h, trace.layers[0]!.P.shape, [batch, seqLen, model.config.hidden_size]);
      return model.relprop(trace, seed, rules, stop);
    },
  };
}

/** A host backward pass as the tensors of AttentionGradients; `inputCols`: the width of the input gradient rows. */
function gradientsFromHost(h: HostMaps, attn: [number, number, number], inputCols: [number]): AttentionGradients {
  return {
    attn: h.attn.map((a) => (a ? tfjs.tensor3d(a, attn) : undefined)),
    input: h.input ? tfjs.tensor2d(h.input, [h.input.length / inputCols[0], inputCols[0]]) : undefined,
  };
}

/** A host relevance pass as ModelPass.relprop returns it; `inputShape`: the input relevance's shape. */
function relevanceFromHost(
  h: HostMaps,
  attn: [number, number, number],
  inputShape: number[],
): { attnCam: (tf.Tensor3D | undefined)[]; input?: tf.Tensor } {
  const input = h.input ? tfjs.tensor(h.input, inputShape) : undefined;
  if (input && h.input64) exactValues.set(input, h.input64);
  return { attnCam: h.attn.map((a) => (a ? tfjs.tensor3d(a, attn) : undefined)), input };
}

const exactValues = new WeakMap<tf.Tensor, Float64Array>();

/**
 * The float64 values of a tensor a ModelPass served from a host pass, before their rounding to float32; undefined
 * for any other tensor. A method that returns such a tensor as it is (ViT full LRP: the pixel relevance) has its map
 * normalised from these (src/methods/explain.ts), so the map is rounded once, as a float64 reference's is.
 */
export function float64Values(t: tf.Tensor): Float64Array | undefined {
  return exactValues.get(t);
}
