import * as tf from '@tensorflow/tfjs';
import type { HeadOutput, VisionTransformer, VitTrace } from '../models/vit.js';
import { RULE_SETS, type RuleSetName } from '../rules/index.js';
import type { ExplanationMethod, HeadKind, MethodOptions, Need } from './types.js';

/** The class to explain: the top class of the method's own model, or a fixed index (one, or one per sample). */
export type ClassRequest = 'top' | number | number[];

/**
 * One forward pass, at most one backward pass per classifier tail and one relevance pass per rule set,
 * shared by every requested method. Each pass stops at the shallowest block any method needs
 * (ALGORITHMS.md §7, quirk Q34): e.g. GradCAM alone back-propagates through the last block only.
 * Everything here runs inside the caller's tf.tidy.
 */
export class PassContext {
  readonly trace: VitTrace;
  readonly heads: Record<HeadKind, HeadOutput>;
  /** Class explained per sample, for each classifier tail. */
  readonly classes: Record<HeadKind, number[]>;
  private readonly grads = new Map<HeadKind, (tf.Tensor3D | undefined)[]>();
  private readonly relevance = new Map<RuleSetName, { attnCam: (tf.Tensor3D | undefined)[]; pixels?: tf.Tensor3D }>();

  constructor(
    readonly model: VisionTransformer,
    input: tf.Tensor4D,
    request: ClassRequest,
    methods: readonly ExplanationMethod[],
    readonly options: MethodOptions,
  ) {
    const c = model.config;
    this.trace = model.forward(input);
    this.heads = {
      lrp: model.head(this.trace, c.lrp_final_norm_eps),
      classifier: model.head(this.trace, c.final_norm_eps),
    };
    const B = this.trace.batch;
    this.classes = {
      lrp: resolveClasses(request, this.heads.lrp.logits, B, c.num_classes),
      classifier: resolveClasses(request, this.heads.classifier.logits, B, c.num_classes),
    };
    this.prepare(methods.flatMap((m) => m.needs(model, options)));
  }

  get batch(): number {
    return this.trace.batch;
  }

  /** Attention probabilities of block l as [B, H, N, N]. */
  attention(l: number): tf.Tensor4D {
    return this.perSample(this.trace.blocks[l]!.A);
  }

  /** ∂(selected logit of `head`)/∂A_l as [B, H, N, N]. */
  gradient(head: HeadKind, l: number): tf.Tensor4D {
    const g = this.grads.get(head)?.[l];
    if (!g) throw new Error(`internal: gradient of block ${l} (${head}) was not requested by any method's needs()`);
    return this.perSample(g);
  }

  /** Relevance of the attention probabilities of block l under a rule set, [B, H, N, N]. */
  attnCam(rules: RuleSetName, l: number): tf.Tensor4D {
    const r = this.relevance.get(rules)?.attnCam[l];
    if (!r) throw new Error(`internal: relevance of block ${l} (${rules}) was not requested by any method's needs()`);
    return this.perSample(r);
  }

  /** Pixel relevance [B, H, W] under a rule set. */
  pixels(rules: RuleSetName): tf.Tensor3D {
    const p = this.relevance.get(rules)?.pixels;
    if (!p) throw new Error(`internal: pixel relevance (${rules}) was not requested by any method's needs()`);
    return p;
  }

  private prepare(needs: Need[]): void {
    const gradDepth = new Map<HeadKind, number>();
    const relDepth = new Map<RuleSetName, number>(); // -1 = to the pixels
    for (const n of needs) {
      if (n.kind === 'gradients')
        gradDepth.set(n.head, Math.min(gradDepth.get(n.head) ?? Number.POSITIVE_INFINITY, n.downTo));
      else
        relDepth.set(
          n.rules,
          Math.min(relDepth.get(n.rules) ?? Number.POSITIVE_INFINITY, n.stop === 'pixels' ? -1 : n.stop),
        );
    }
    const c = this.model.config;
    for (const [head, downTo] of gradDepth) {
      const eps = head === 'lrp' ? c.lrp_final_norm_eps : c.final_norm_eps;
      this.grads.set(head, this.model.attentionGradients(this.trace, eps, this.oneHot(this.classes[head]), downTo));
    }
    // The relevance seed is the one-hot vector itself (value 1, not the logit; quirk Q8) at the LRP models' class.
    for (const [rules, depth] of relDepth) {
      const stop = depth < 0 ? 'pixels' : depth;
      this.relevance.set(
        rules,
        this.model.relprop(this.trace, this.heads.lrp, this.oneHot(this.classes.lrp), RULE_SETS[rules], stop),
      );
    }
  }

  private oneHot(classes: number[]): tf.Tensor2D {
    return tf.oneHot(tf.tensor1d(classes, 'int32'), this.model.config.num_classes).toFloat() as tf.Tensor2D;
  }

  private perSample(t: tf.Tensor3D): tf.Tensor4D {
    const [, n, m] = t.shape;
    return tf.reshape(t, [this.batch, this.model.config.num_heads, n, m]);
  }
}

function resolveClasses(request: ClassRequest, logits: tf.Tensor2D, B: number, numClasses: number): number[] {
  let classes: number[];
  if (request === 'top') classes = Array.from(tf.argMax(logits, 1).dataSync());
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
