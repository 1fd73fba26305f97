import * as tf from '../engine/tf.js';
import { FileFormatError, type HostTensor, type StateDict, shapeString } from '../formats/host-tensor.js';
import type { BertConfig } from './bert-config.js';
import { Linear } from './linear.js';

export interface LayerNormWeights {
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

export interface BertLayerWeights {
  query: Linear;
  key: Linear;
  value: Linear;
  /** BertSelfOutput: dense, then LayerNorm(dense(ctx) + h). */
  attnOut: Linear;
  attnNorm: LayerNormWeights;
  /** BertIntermediate (D → intermediate), then GELU. */
  inter: Linear;
  /** BertOutput: dense (intermediate → D), then LayerNorm(dense(g) + a). */
  out: Linear;
  outNorm: LayerNormWeights;
}

export interface BertWeights {
  wordEmbeddings: tf.Tensor2D; // (vocab, D)
  positionEmbeddings: tf.Tensor2D; // (max_position_embeddings, D)
  tokenTypeEmbeddings: tf.Tensor2D; // (type_vocab_size, D)
  embNorm: LayerNormWeights;
  layers: BertLayerWeights[];
  pooler: Linear;
  classifier: Linear;
}

/** The buffer HF 3.x saves beside the parameters (arange(max_position_embeddings)); accepted and ignored. */
const IGNORED_KEYS = new Set(['bert.embeddings.position_ids']);

/**
 * State-dict keys and shapes of a HF transformers-3.x BertForSequenceClassification
 * (docs/formats.md#bert-model-folder).
 */
export function expectedBertKeys(c: BertConfig): Map<string, number[]> {
  const D = c.hidden_size;
  const I = c.intermediate_size;
  const keys = new Map<string, number[]>([
    ['bert.embeddings.word_embeddings.weight', [c.vocab_size, D]],
    ['bert.embeddings.position_embeddings.weight', [c.max_position_embeddings, D]],
    ['bert.embeddings.token_type_embeddings.weight', [c.type_vocab_size, D]],
    ['bert.embeddings.LayerNorm.weight', [D]],
    ['bert.embeddings.LayerNorm.bias', [D]],
  ]);
  const linear = (p: string, out: number, inp: number) => {
    keys.set(`${p}.weight`, [out, inp]);
    keys.set(`${p}.bias`, [out]);
  };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `bert.encoder.layer.${i}.`;
    for (const n of ['query', 'key', 'value']) linear(`${p}attention.self.${n}`, D, D);
    linear(`${p}attention.output.dense`, D, D);
    keys.set(`${p}attention.output.LayerNorm.weight`, [D]);
    keys.set(`${p}attention.output.LayerNorm.bias`, [D]);
    linear(`${p}intermediate.dense`, I, D);
    linear(`${p}output.dense`, D, I);
    keys.set(`${p}output.LayerNorm.weight`, [D]);
    keys.set(`${p}output.LayerNorm.bias`, [D]);
  }
  linear('bert.pooler.dense', D, D);
  linear('classifier', c.num_labels, D);
  return keys;
}

/**
 * Old checkpoints (pytorch-pretrained-bert, TF conversions) name the LayerNorm parameters gamma/beta;
 * HF's from_pretrained renames them to weight/bias, and so do we.
 */
function normaliseKey(k: string): string {
  return k.replace(/\.LayerNorm\.gamma$/, '.LayerNorm.weight').replace(/\.LayerNorm\.beta$/, '.LayerNorm.bias');
}

/** A hint for the two common wrong layouts: a bare BertModel, or a DataParallel `module.` prefix. */
function layoutHint(keys: string[]): string {
  if (keys.length > 0 && keys.every((k) => k.startsWith('module.'))) {
    return " (every key starts with 'module.': the checkpoint was saved from a DataParallel wrapper; save model.module.state_dict() instead)";
  }
  if (keys.some((k) => k.startsWith('embeddings.') || k.startsWith('encoder.layer.'))) {
    return " (keys without the 'bert.' prefix: this looks like a bare BertModel checkpoint, which has no classifier; a BertForSequenceClassification state dict is needed)";
  }
  return '';
}

/**
 * Check a state dict against the config (strict, like torch's load_state_dict(strict=True), apart from the
 * ignored position_ids buffer) and upload it. Every mismatch is reported in one message that names the
 * key, the file and both shapes.
 */
export function bertWeightsFromStateDict(sd: StateDict, c: BertConfig, file: string): BertWeights {
  const expected = expectedBertKeys(c);
  const byKey = new Map<string, HostTensor>();
  const problems: string[] = [];
  for (const [k, t] of sd) {
    if (IGNORED_KEYS.has(k)) continue;
    const nk = normaliseKey(k);
    if (byKey.has(nk)) problems.push(`key '${k}' duplicates '${nk}'`);
    byKey.set(nk, t);
  }
  for (const [k, shape] of expected) {
    const t = byKey.get(k);
    if (!t) problems.push(`missing key '${k}' (expected shape ${shapeString(shape)})`);
    else if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      problems.push(`key '${k}' has shape ${shapeString(t.shape)}, the config expects ${shapeString(shape)}`);
    } else if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) {
      problems.push(`key '${k}' is not a floating-point tensor`);
    }
  }
  for (const [k, t] of byKey)
    if (!expected.has(k)) problems.push(`unexpected key '${k}' (shape ${shapeString(t.shape)})`);
  if (problems.length) {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? `; … and ${problems.length - 8} more` : '';
    throw new FileFormatError(
      file,
      `weights do not fit BERT model '${c.name}' (D=${c.hidden_size}, layers=${c.num_hidden_layers}, heads=${c.num_attention_heads}, intermediate=${c.intermediate_size}, vocab=${c.vocab_size}, labels=${c.num_labels})${layoutHint([...sd.keys()])}: ${shown}${more}`,
    );
  }
  return buildBertWeights(c, (k, shape) => {
    const t = byKey.get(k)!;
    return tf.tensor(Float32Array.from(t.data as Float32Array), shape, 'float32');
  });
}

/**
 * Assemble the model's weight structure from a tensor source: `get(key, shape)` returns the state-dict
 * tensor `key` (HF names of expectedBertKeys) viewed with `shape`. Loading uploads host arrays; training
 * passes views of tf.Variables, so gradients reach them.
 */
export function buildBertWeights(c: BertConfig, get: (key: string, shape: number[]) => tf.Tensor): BertWeights {
  const expected = expectedBertKeys(c);
  const t = (k: string) => get(k, expected.get(k)!);
  const vec = (k: string) => t(k) as tf.Tensor1D;
  const mat = (k: string) => t(k) as tf.Tensor2D;
  const linear = (p: string) => new Linear(mat(`${p}.weight`), vec(`${p}.bias`));
  const norm = (p: string): LayerNormWeights => ({ gamma: vec(`${p}.weight`), beta: vec(`${p}.bias`) });
  return {
    wordEmbeddings: mat('bert.embeddings.word_embeddings.weight'),
    positionEmbeddings: mat('bert.embeddings.position_embeddings.weight'),
    tokenTypeEmbeddings: mat('bert.embeddings.token_type_embeddings.weight'),
    embNorm: norm('bert.embeddings.LayerNorm'),
    layers: Array.from({ length: c.num_hidden_layers }, (_, i) => {
      const p = `bert.encoder.layer.${i}.`;
      return {
        query: linear(`${p}attention.self.query`),
        key: linear(`${p}attention.self.key`),
        value: linear(`${p}attention.self.value`),
        attnOut: linear(`${p}attention.output.dense`),
        attnNorm: norm(`${p}attention.output.LayerNorm`),
        inter: linear(`${p}intermediate.dense`),
        out: linear(`${p}output.dense`),
        outNorm: norm(`${p}output.LayerNorm`),
      };
    }),
    pooler: linear('bert.pooler.dense'),
    classifier: linear('classifier'),
  };
}
