/**
 * Trains the small BERT that ships as the embedded default model of the ERASER benchmark (embedded/eraser/model/), on
 * the train split of the embedded synthetic movie reviews (scripts/make-embedded-eraser.ts, run that first: it also
 * writes the vocabulary). Training goes through the same model code that the explanation methods use
 * (BertForSequenceClassification.forward, gradients by tf.variableGrads via optimizer.minimize), TF.js only.
 *
 *   node --import tsx scripts/train-embedded-bert.ts [--epochs 10] [--batch 16] [--lr 2e-3] [--data embedded/eraser/data] [--out embedded/eraser/model]
 *
 * Each document is encoded as the pipeline does it (`[CLS] wordpieces [SEP]`, truncated to --max-length); a batch is
 * padded to its longest document, with the attention mask. Initialisation as HF's `_init_weights`: N(0, 0.02) for
 * every weight matrix and embedding, zero biases, LayerNorm 1/0. Adam with a linear warm-up and a cosine decay;
 * no dropout (the model code has none). Deterministic given its options (seeded init and batch order; one thread).
 *
 * Augmentation (--recombine, default 0.5): half of the training documents of every step are rebuilt from their
 * evidence sentences placed among neutral sentences of other training documents (of both classes). With only 400
 * documents, a model trained on them as they are also memorises neutral words that happen to correlate with the class
 * in the sample (and then misreads clear test reviews); recombination takes that away. It uses the train split's
 * evidence annotations, as ERASER's own supervised pipelines do.
 *
 * Writes config.json (HF BertConfig form, id2label {0: NEG, 1: POS}), weights.safetensors (F32, HF transformers-3.x
 * key names as expectedBertKeys lists them), model_params.json (the pipeline's params file: max_length, classes; read
 * by bench eraser) and training.json (options, per-epoch loss and validation accuracy, final accuracies).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type EraserSplit, loadEraserData, MOVIES_CLASSES } from '../src/datasets/eraser.js';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../src/engine/backend.js';
import { setSplitBatchedMatmul, setTrainingMode } from '../src/engine/ops.js';
import type { StateDict } from '../src/formats/host-tensor.js';
import { encodeSafetensors } from '../src/formats/safetensors.js';
import { BertForSequenceClassification } from '../src/models/bert.js';
import { type BertConfig, parseBertConfig } from '../src/models/bert-config.js';
import { buildBertWeights, expectedBertKeys } from '../src/models/bert-weights.js';
import { WordPieceTokenizer } from '../src/text/wordpiece.js';
import { Rng } from '../src/util/random.js';

const args = await yargs(hideBin(process.argv))
  .option('epochs', { type: 'number', default: 10 })
  .option('batch', { type: 'number', default: 16 })
  .option('lr', { type: 'number', default: 2e-3 })
  .option('warmup', { type: 'number', default: 30, describe: 'linear warm-up steps' })
  .option('seed', { type: 'number', default: 1 })
  .option('recombine', {
    type: 'number',
    default: 0.5,
    describe:
      'augmentation: probability that a training document is replaced by its evidence sentences among neutral sentences of other training documents',
  })
  .option('mask-prob', {
    type: 'number',
    default: 0,
    describe: 'augmentation: probability that a training wordpiece is replaced by [MASK] (fresh each step)',
  })

  .option('hidden', { type: 'number', default: 32 })
  .option('layers', { type: 'number', default: 2 })
  .option('heads', { type: 'number', default: 4 })
  .option('intermediate', { type: 'number', default: 64 })
  .option('max-length', { type: 'number', default: 256, describe: 'wordpieces per document, [CLS]/[SEP] included' })
  .option('data', { type: 'string', default: 'embedded/eraser/data' })
  .option('vocab', { type: 'string', describe: 'vocab.txt (default: <out>/vocab.txt)' })
  .option('out', { type: 'string', default: 'embedded/eraser/model' })
  .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
  .strict()
  .parseAsync();

const backend = await initBackend(args.backend);
setSplitBatchedMatmul(false);
setTrainingMode(true); // plain batched matmuls and transposed-free matmul gradients are cheaper for training

const vocabFile = args.vocab ?? join(args.out, 'vocab.txt');
const tokenizer = WordPieceTokenizer.fromFile(vocabFile);
const maxLength = args['max-length'];

/** The HF config.json written beside the weights. */
const hfConfig = {
  architectures: ['BertForSequenceClassification'],
  attention_probs_dropout_prob: 0.1,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: args.hidden,
  id2label: Object.fromEntries(MOVIES_CLASSES.map((c, i) => [String(i), c])),
  initializer_range: 0.02,
  intermediate_size: args.intermediate,
  label2id: Object.fromEntries(MOVIES_CLASSES.map((c, i) => [c, i])),
  layer_norm_eps: 1e-12,
  max_position_embeddings: maxLength,
  model_type: 'bert',
  name: 'bert-embedded-eraser',
  num_attention_heads: args.heads,
  num_hidden_layers: args.layers,
  pad_token_id: tokenizer.padId,
  type_vocab_size: 2,
  vocab_size: tokenizer.vocabSize,
};
const cfg: BertConfig = parseBertConfig(hfConfig, 'embedded BERT config');

interface Example {
  docid: string;
  ids: Int32Array;
  label: number;
  /** Wordpiece ids of each line (sentence) of the document, and whether the line holds an evidence. */
  lines: { ids: number[]; evidence: boolean }[];
}

function loadSplit(split: EraserSplit): Example[] {
  const { annotations, documents } = loadEraserData(args.data, split);
  return annotations.map((a) => {
    const docid = a.evidences[0]?.[0]?.docid ?? a.annotation_id;
    const text = documents.texts.get(docid)!;
    const enc = tokenizer.encode(text, { maxLength });
    const evidenceLines = new Set<number>();
    for (const g of a.evidences)
      for (const e of g) for (let l = e.start_sentence; l < e.end_sentence; l++) evidenceLines.add(l);
    const lines = text
      .split('\n')
      .map((line, i) => ({
        ids: tokenizer.tokenize(line).map((t) => tokenizer.tokenId(t)),
        evidence: evidenceLines.has(i),
      }))
      .filter((l) => l.ids.length > 0);
    return { docid, ids: enc.inputIds, label: MOVIES_CLASSES.indexOf(a.classification), lines };
  });
}

const data = { train: loadSplit('train'), val: loadSplit('val'), test: loadSplit('test') };

/** Every line of the training documents without an evidence, whatever the document's class. */
const neutralPool = data.train.flatMap((e) => e.lines.filter((l) => !l.evidence).map((l) => l.ids));

/**
 * Recombination augmentation: the document's evidence sentences, in random places among neutral sentences drawn from
 * the whole training split (both classes), up to the document's own length. The neutral text of one review then
 * carries no information on its class, so the model cannot memorise it; what it learns is the sentiment phrases.
 */
function recombine(e: Example, rng: Rng): Example {
  const evidence = e.lines.filter((l) => l.evidence).map((l) => l.ids);
  const budget = e.ids.length - 2;
  let used = evidence.reduce((n, l) => n + l.length, 0);
  const sentences: number[][] = [];
  for (let tries = 0; tries < 50 && used < budget; tries++) {
    const l = neutralPool[rng.int(0, neutralPool.length)]!;
    if (used + l.length > budget) continue;
    sentences.push(l);
    used += l.length;
  }
  for (const l of evidence) sentences.splice(rng.int(0, sentences.length + 1), 0, l);
  const ids = Int32Array.from([tokenizer.clsId, ...sentences.flat(), tokenizer.sepId]);
  return { ...e, ids };
}

/** Ids and attention mask of some examples, padded to the longest ([PAD] ids, mask 0). */
function pad(examples: readonly Example[]): { ids: Int32Array; mask: Int32Array; batch: number; seqLen: number } {
  const seqLen = Math.max(...examples.map((e) => e.ids.length));
  const ids = new Int32Array(examples.length * seqLen).fill(tokenizer.padId);
  const mask = new Int32Array(examples.length * seqLen);
  examples.forEach((e, i) => {
    ids.set(e.ids, i * seqLen);
    mask.fill(1, i * seqLen, i * seqLen + e.ids.length);
  });
  return { ids, mask, batch: examples.length, seqLen };
}

// HF-style initialisation: N(0, 0.02) for weights and embeddings, zero biases, LayerNorm 1/0.
const rng = new Rng(args.seed);
const vars = new Map<string, tf.Variable>();
for (const [k, shape] of expectedBertKeys(cfg)) {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  if (k.endsWith('LayerNorm.weight')) v.fill(1);
  else if (!k.endsWith('.bias')) for (let i = 0; i < n; i++) v[i] = 0.02 * rng.normal();
  vars.set(k, tf.variable(tf.tensor(v, shape), true, k));
}

function stateDict(): StateDict {
  const sd: StateDict = new Map();
  for (const [k, v] of vars) sd.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
  return sd;
}

/** The model over the live variables (views built inside each gradient scope, so gradients reach the variables). */
function modelFromVariables(): BertForSequenceClassification {
  return new BertForSequenceClassification(
    cfg,
    buildBertWeights(cfg, (k, shape) => tf.reshape(vars.get(k)!, shape)),
  );
}

/** Accuracy and mean loss over a split, in padded batches. */
function evaluate(examples: readonly Example[]): { accuracy: number; loss: number } {
  let correct = 0;
  let loss = 0;
  for (let s = 0; s < examples.length; s += 32) {
    const chunk = examples.slice(s, s + 32);
    const b = pad(chunk);
    const [pred, l] = tf.tidy(() => {
      const logits = modelFromVariables().forward(b.ids, b.mask, b.batch, b.seqLen).logits;
      const y = tf.oneHot(
        tf.tensor1d(
          chunk.map((e) => e.label),
          'int32',
        ),
        cfg.num_labels,
      );
      const ce = tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.SUM);
      return [tf.argMax(logits, 1).dataSync(), ce.dataSync()[0]!] as const;
    });
    chunk.forEach((e, i) => {
      correct += pred[i] === e.label ? 1 : 0;
    });
    loss += l;
  }
  return { accuracy: correct / examples.length, loss: loss / examples.length };
}

const stepsPerEpoch = Math.ceil(data.train.length / args.batch);
const totalSteps = args.epochs * stepsPerEpoch;
const optimizer = tf.train.adam(args.lr);
const log: {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
}[] = [];
const t0 = performance.now();
console.log(
  `backend ${backend.description}; BERT ${cfg.num_hidden_layers} layers, D=${cfg.hidden_size}, ${cfg.num_attention_heads} heads, ` +
    `vocab ${cfg.vocab_size}; ${data.train.length} training documents, ${args.epochs} epochs of ${stepsPerEpoch} steps`,
);
let step = 0;
const augment = new Rng(args.seed + 7919);
const maskId = tokenizer.tokenId('[MASK]');
for (let epoch = 1; epoch <= args.epochs; epoch++) {
  // Fisher–Yates shuffle of the training documents, seeded per epoch.
  const order = data.train.map((_, i) => i);
  const shuffle = new Rng(args.seed * 1000 + epoch);
  for (let i = order.length - 1; i > 0; i--) {
    const j = shuffle.int(0, i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let epochLoss = 0;
  for (let s = 0; s < order.length; s += args.batch) {
    step++;
    const chunk = order
      .slice(s, s + args.batch)
      .map((i) => (augment.next() < args.recombine ? recombine(data.train[i]!, augment) : data.train[i]!));
    const b = pad(chunk);
    if (args['mask-prob'] > 0)
      for (let i = 0; i < b.ids.length; i++) {
        const id = b.ids[i]!;
        if (
          id !== tokenizer.clsId &&
          id !== tokenizer.sepId &&
          id !== tokenizer.padId &&
          augment.next() < args['mask-prob']
        )
          b.ids[i] = maskId;
      }
    const y = tf.oneHot(
      tf.tensor1d(
        chunk.map((e) => e.label),
        'int32',
      ),
      cfg.num_labels,
    );
    const warm = Math.min(1, step / args.warmup);
    const cosine = 0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps));
    (optimizer as unknown as { learningRate: number }).learningRate = args.lr * warm * cosine;
    const loss = optimizer.minimize(
      () => {
        const logits = modelFromVariables().forward(b.ids, b.mask, b.batch, b.seqLen).logits;
        return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
      },
      true,
      [...vars.values()],
    );
    epochLoss += loss!.dataSync()[0]! * chunk.length;
    tf.dispose([y, loss!]);
  }
  const val = evaluate(data.val);
  const entry = {
    epoch,
    trainLoss: epochLoss / order.length,
    valLoss: val.loss,
    valAccuracy: val.accuracy,
    seconds: (performance.now() - t0) / 1000,
  };
  log.push(entry);
  console.log(
    `epoch ${epoch} loss ${entry.trainLoss.toFixed(4)} val loss ${val.loss.toFixed(4)} ` +
      `val acc ${(100 * val.accuracy).toFixed(1)}% (${entry.seconds.toFixed(0)} s)`,
  );
}

const seconds = (performance.now() - t0) / 1000;
const final = log.at(-1)!;
const train = evaluate(data.train);
const test = evaluate(data.test);
mkdirSync(args.out, { recursive: true });
writeFileSync(join(args.out, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);
// The pipeline's model_params.json (BERT_params/movies_bert.json form): bench eraser reads max_length and the classes.
writeFileSync(
  join(args.out, 'model_params.json'),
  `${JSON.stringify(
    {
      bert_dir: '.',
      bert_vocab: 'vocab.txt',
      evidence_classifier: { batch_size: args.batch, classes: MOVIES_CLASSES, epochs: args.epochs, lr: args.lr },
      max_length: maxLength,
    },
    null,
    1,
  )}\n`,
);
writeFileSync(
  join(args.out, 'weights.safetensors'),
  encodeSafetensors(stateDict(), {
    format: 'pt',
    trained_by: 'scripts/train-embedded-bert.ts',
    epochs: String(args.epochs),
    train_accuracy: String(train.accuracy),
    val_accuracy: String(final.valAccuracy),
    test_accuracy: String(test.accuracy),
  }),
);
writeFileSync(
  join(args.out, 'training.json'),
  `${JSON.stringify(
    {
      script: 'scripts/train-embedded-bert.ts',
      options: args,
      backend: backend.name,
      classes: MOVIES_CLASSES,
      maxLength,
      documents: { train: data.train.length, val: data.val.length, test: data.test.length },
      trainAccuracy: train.accuracy,
      valAccuracy: final.valAccuracy,
      testAccuracy: test.accuracy,
      testLoss: test.loss,
      seconds,
      log,
    },
    null,
    1,
  )}\n`,
);
console.log(
  `wrote ${args.out}: train accuracy ${(100 * train.accuracy).toFixed(1)}%, val ${(100 * final.valAccuracy).toFixed(1)}%, ` +
    `test ${(100 * test.accuracy).toFixed(1)}% (training ${seconds.toFixed(0)} s)`,
);
