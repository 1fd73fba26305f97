import { FileFormatError, readInputFile } from '../formats/host-tensor.js';

/**
 * BERT for sequence classification, read from a HuggingFace `config.json` (BertConfig names,
 * docs/methods.md#bert-model). Only what the forward pass and the checkpoint's shapes depend on is kept; dropout
 * rates and the initialiser range are training-only and ignored.
 */
export interface BertConfig {
  name: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  /** Only HF's "gelu" (the exact erf GELU of transformers 3.x) is implemented. */
  hidden_act: 'gelu';
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  num_labels: number;
  /** Label names by class index, when the config has `id2label`. */
  labels?: string[];
  pad_token_id: number;
}

/** Head width d = hidden_size / num_attention_heads. */
export function bertHeadDim(c: BertConfig): number {
  return c.hidden_size / c.num_attention_heads;
}

const INTEGER_FIELDS = [
  'vocab_size',
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'intermediate_size',
  'max_position_embeddings',
  'type_vocab_size',
] as const;

/**
 * Build a config from a parsed HF BertConfig JSON object. Every problem is collected and reported in one
 * FileFormatError naming `source`. Defaults follow transformers 3.5.1: hidden_act "gelu",
 * layer_norm_eps 1e-12, pad_token_id 0, num_labels = len(id2label) if given, else num_labels, else 2.
 */
export function parseBertConfig(raw: unknown, source: string): BertConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FileFormatError(source, 'expected a JSON object with the HF BertConfig fields (hidden_size, …)');
  }
  const m = raw as Record<string, unknown>;
  const problems: string[] = [];
  const num = (k: string, fallback?: number): number => {
    const v = m[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      problems.push(
        v === undefined ? `missing field '${k}'` : `field '${k}' must be a number, found ${JSON.stringify(v)}`,
      );
      return Number.NaN;
    }
    return v;
  };
  if (m.model_type !== undefined && m.model_type !== 'bert') {
    problems.push(`model_type '${String(m.model_type)}' is not supported (only 'bert')`);
  }
  if (m.position_embedding_type !== undefined && m.position_embedding_type !== 'absolute') {
    problems.push(`position_embedding_type '${String(m.position_embedding_type)}' is not supported (only 'absolute')`);
  }
  const act = m.hidden_act ?? 'gelu';
  if (act !== 'gelu') {
    problems.push(
      `hidden_act ${JSON.stringify(act)} is not supported (only "gelu", the exact erf GELU of the reference's transformers 3.x)`,
    );
  }
  const ints = Object.fromEntries(INTEGER_FIELDS.map((k) => [k, num(k)])) as Record<
    (typeof INTEGER_FIELDS)[number],
    number
  >;
  for (const k of INTEGER_FIELDS) {
    const v = ints[k];
    if (!Number.isNaN(v) && (!Number.isInteger(v) || v <= 0))
      problems.push(`${k} must be a positive integer, found ${v}`);
  }
  const D = ints.hidden_size;
  const H = ints.num_attention_heads;
  if (Number.isInteger(D) && Number.isInteger(H) && D > 0 && H > 0 && D % H !== 0) {
    problems.push(`num_attention_heads ${H} does not divide hidden_size ${D}`);
  }
  const eps = num('layer_norm_eps', 1e-12);
  if (!Number.isNaN(eps) && !(eps > 0)) problems.push(`layer_norm_eps must be positive, found ${eps}`);
  const pad = num('pad_token_id', 0);
  if (!Number.isNaN(pad) && (!Number.isInteger(pad) || pad < 0 || (ints.vocab_size > 0 && pad >= ints.vocab_size))) {
    problems.push(`pad_token_id must be a token id in [0, vocab_size), found ${pad}`);
  }
  const labels = parseId2Label(m.id2label, problems);
  let numLabels: number;
  if (labels) {
    numLabels = labels.length;
    if (m.num_labels !== undefined && m.num_labels !== numLabels) {
      problems.push(
        `num_labels ${JSON.stringify(m.num_labels)} disagrees with id2label, which has ${numLabels} entries`,
      );
    }
  } else {
    numLabels = num('num_labels', 2);
    if (!Number.isNaN(numLabels) && (!Number.isInteger(numLabels) || numLabels <= 0)) {
      problems.push(`num_labels must be a positive integer, found ${numLabels}`);
    }
  }
  if (problems.length) throw new FileFormatError(source, `invalid BERT config: ${problems.join('; ')}`);
  const name = m.name ?? m._name_or_path;
  return {
    name: typeof name === 'string' && name !== '' ? name : 'bert',
    ...ints,
    hidden_act: 'gelu',
    layer_norm_eps: eps,
    num_labels: numLabels,
    ...(labels ? { labels } : {}),
    pad_token_id: pad,
  };
}

/** id2label {"0": "NEG", "1": "POS"} → ["NEG", "POS"]; the keys must be exactly 0 … C−1. */
function parseId2Label(v: unknown, problems: string[]): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`id2label must be an object {"0": name, …}, found ${JSON.stringify(v)}`);
    return undefined;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  const out: string[] = new Array(entries.length);
  for (const [k, name] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || String(i) !== k || out[i] !== undefined) {
      problems.push(`id2label keys must be the class indices 0 … ${entries.length - 1}, found '${k}'`);
      return undefined;
    }
    out[i] = String(name);
  }
  if (entries.length === 0) {
    problems.push('id2label is empty');
    return undefined;
  }
  return out;
}

export function readBertConfig(file: string): BertConfig {
  const text = readInputFile(file).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(file, `model config is not valid JSON (${(e as Error).message})`);
  }
  return parseBertConfig(raw, file);
}
