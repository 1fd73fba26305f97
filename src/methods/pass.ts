import * as tf from '../engine/tf.js';
import type { AttentionGradients } from '../models/gradients.js';
import { RULE_SETS, type RuleSetName } from '../rules/index.js';
import type { ModelFamily, ModelInfo, ModelPass } from './model-pass.js';
import type { ExplanationMethod, HeadKind, MethodOptions, Need } from './types.js';

/** The class to explain: the top class of the method's own model, or a fixed index (one, or one per sample). */
export type ClassRequest = 'top' | number | number[];

/**
 * One forward pass (done by the ModelPass), at most one backward pass per classifier tail and one relevance pass
 * per rule set, shared by every requested method. Each pass stops at the shallowest block any method needs
 * (docs/methods.md#what-each-method-needs, quirk Q34): e.g. GradCAM alone back-propagates through the last block
 * only. How the pass is organised: docs/architecture.md#the-shared-pass. Everything here runs inside the caller's
 * tf.tidy.
 */
export class PassContext {
  /**
   * The TensorFlow.js namespace bench runs on, for methods to compute with (a plug-in need not resolve
   * @tensorflow/tfjs itself, and must not use a second copy of it).
   */
  readonly tf = tf.tfjs;
  /** Class explained per sample, for each classifier tail. */
  readonly classes: Record<HeadKind, number[]>;
  private readonly grads = new Map<HeadKind, AttentionGradients>();
  private readonly relevance = new Map<RuleSetName, { attnCam: (tf.Tensor3D | undefined)[]; input?: tf.Tensor }>();

  constructor(
    readonly pass: ModelPass,
    request: ClassRequest | Record<HeadKind, number[]>,
    methods: readonly ExplanationMethod[],
    readonly options: MethodOptions,
  ) {
    const B = pass.batch;
    const perHead = (h: HeadKind): ClassRequest =>
      typeof request === 'object' && !Array.isArray(request) ? request[h] : request;
    this.classes = {
      lrp: resolveClasses(perHead('lrp'), () => topClasses(pass.logits('lrp')), B, pass.numClasses),
      classifier: resolveClasses(
        perHead('classifier'),
        () => topClasses(pass.logits('classifier')),
        B,
        pass.numClasses,
      ),
    };
    this.prepare(passPlan(methods, this.info, options));
  }

  get info(): ModelInfo {
    return { family: this.pass.family, depth: this.pass.depth };
  }

  get family(): ModelFamily {
    return this.pass.family;
  }

  get depth(): number {
    return this.pass.depth;
  }

  get batch(): number {
    return this.pass.batch;
  }

  /** Attention probabilities of block l as [B, H, N, N]. */
  attention(l: number): tf.Tensor4D {
    return this.perSample(this.pass.attention(l));
  }

  /** ∂(selected logit of `head`)/∂A_l as [B, H, N, N]. */
  gradient(head: HeadKind, l: number): tf.Tensor4D {
    const g = this.grads.get(head)?.attn[l];
    if (!g) throw new Error(`gradient of block ${l} (${head}) was not requested by any method's needs()`);
    return this.perSample(g);
  }

  /**
   * ∂(selected logit of `head`)/∂(embeddings) as [B, N, D]: the input of the first block (ViT: the token embeddings
   * after the position add; BERT: the embedding output). Needs { kind: 'gradients', head, downTo: 'input' }.
   */
  inputGradient(head: HeadKind): tf.Tensor3D {
    const g = this.grads.get(head)?.input;
    if (!g) throw new Error(`the gradient at the embeddings (${head}) was not requested by any method's needs()`);
    return tf.reshape(g, [this.batch, -1, g.shape[1]]);
  }

  /** The embeddings, the first block's input, as [B, N, D] (what inputGradient differentiates against). */
  embeddings(): tf.Tensor3D {
    const e = this.pass.embeddings();
    return tf.reshape(e, [this.batch, -1, e.shape[1]]);
  }

  /** Relevance of the attention probabilities of block l under a rule set, [B, H, N, N]. */
  attnCam(rules: RuleSetName, l: number): tf.Tensor4D {
    const r = this.relevance.get(rules)?.attnCam[l];
    if (!r) throw new Error(`relevance of block ${l} (${rules}) was not requested by any method's needs()`);
    return this.perSample(r);
  }

  /** Relevance at the model input under a rule set (ViT: pixels [B, H, W]; BERT: encoder input [B, N, D]). */
  inputRelevance(rules: RuleSetName): tf.Tensor {
    const p = this.relevance.get(rules)?.input;
    if (!p) throw new Error(`input relevance (${rules}) was not requested by any method's needs()`);
    return p;
  }

  private prepare(plan: PassPlan): void {
    for (const [head, downTo] of plan.gradients) {
      this.grads.set(head, this.pass.attentionGradients(head, this.oneHot(this.classes[head]), downTo));
    }
    // The relevance seed is the one-hot vector itself (value 1, not the logit; quirk Q8) at the LRP models' class.
    for (const [rules, stop] of plan.relevance) {
      this.relevance.set(rules, this.pass.relprop(this.oneHot(this.classes.lrp), RULE_SETS[rules], stop));
    }
  }

  private oneHot(classes: number[]): tf.Tensor2D {
    return tf.oneHot(tf.tensor1d(classes, 'int32'), this.pass.numClasses).toFloat() as tf.Tensor2D;
  }

  private perSample(t: tf.Tensor3D): tf.Tensor4D {
    const [, n, m] = t.shape;
    return tf.reshape(t, [this.batch, this.pass.numHeads, n, m]);
  }
}

function topClasses(logits: tf.Tensor2D): number[] {
  return Array.from(tf.argMax(logits, 1).dataSync());
}

/** The backward passes (per classifier tail) and relevance passes (per rule set) a set of needs asks for, each as deep as its deepest need. */
export interface PassPlan {
  gradients: Map<HeadKind, number | 'input'>;
  relevance: Map<RuleSetName, number | 'input'>;
}

/**
 * The passes `methods` need on a model: their needs merged, one pass per tail or rule set. The PassContext runs this
 * plan, and `--forward f64` runs the same plan on the host beforehand (float64-passes.ts).
 */
export function passPlan(methods: readonly ExplanationMethod[], info: ModelInfo, options: MethodOptions): PassPlan {
  const needs = methods.flatMap((m) => m.needs(info, options));
  const deeper = (a: number | 'input' | undefined, b: number | 'input') =>
    a === undefined ? b : a === 'input' || b === 'input' ? 'input' : Math.min(a, b);
  const plan: PassPlan = { gradients: new Map(), relevance: new Map() };
  for (const n of needs) {
    if (n.kind === 'gradients') plan.gradients.set(n.head, deeper(plan.gradients.get(n.head), n.downTo));
    else plan.relevance.set(n.rules, deeper(plan.relevance.get(n.rules), n.stop));
  }
  return plan;
}

/** The classes a request names for a batch of B; `top` gives the argmax per sample, asked only for 'top'. */
export function resolveClasses(request: ClassRequest, top: () => number[], B: number, numClasses: number): number[] {
  let classes: number[];
  if (request === 'top') classes = top();
  else if (typeof request === 'number') classes = new Array(B).fill(request);
  else {
    if (request.length !== B) throw new Error(`${request.length} classes given for a batch of ${B} inputs`);
    classes = request;
  }
  for (const k of classes) {
    if (!Number.isInteger(k) || k < 0 || k >= numClasses)
      throw new Error(`class ${k} is out of range: the model has ${numClasses} classes (0 … ${numClasses - 1})`);
  }
  return classes;
}
