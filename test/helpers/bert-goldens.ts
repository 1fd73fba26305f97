import type { StateDict } from '../../src/formats/host-tensor.js';
import { BertForSequenceClassification } from '../../src/models/bert.js';
import { readBertConfig } from '../../src/models/bert-config.js';
import { bertWeightsFromStateDict } from '../../src/models/bert-weights.js';
import { bertFormulaStateDict } from './formula-weights.js';
import { goldenPath, readGoldenTensors, readJson } from './golden.js';

/**
 * The padded BERT goldens (golden bert/P1, P2; scripts/golden/make-bert-geometries.py): loading one, and which
 * registry method (and start layer) reproduces which official call. Shared by the bert-geometries, bert-backward-f64
 * and bert-relprop-f64 tests and scripts/precision.ts.
 */

export interface BertGoldenSeq {
  name: string;
  input_ids: number[];
  attention_mask: number[];
  predicted_class: number;
  other_class: number;
  ulp_noise_vs_f64_max_abs_diff_over_max_abs: Record<string, number>;
}

export interface BertGoldenMeta {
  sequences: BertGoldenSeq[];
  start_layer_last: number;
  weights: { seed: number; tensors: Record<string, { sha256_f32le: string }> };
}

/** A padded BERT golden: its config, meta, outputs, the formula weights and the model built from them. */
export function goldenBert(name: string) {
  const cfg = readBertConfig(goldenPath('bert', name, 'config.json'));
  const meta = readJson<BertGoldenMeta>('bert', name, 'meta.json');
  const g = readGoldenTensors('bert', name, 'outputs.safetensors');
  const sd: StateDict = bertFormulaStateDict(cfg, meta.weights.seed);
  const model = new BertForSequenceClassification(cfg, bertWeightsFromStateDict(sd, cfg, `${name} formula`));
  return { cfg, meta, g, sd, model };
}
export interface BertGoldenCall {
  method: string;
  /** The official output's name; LAST stands for the model's last layer (the case's `start_layer_last`). */
  ref: string;
  startLayer?: number;
  /** Whether the output depends on the class; it is then stored per class (`.pred`, `.other`). */
  perClass: boolean;
  /** LRP-based: ill-conditioned, the official float32 output far from its float64 twin. */
  lrp?: true;
}

export const BERT_GOLDEN_CALLS: readonly BertGoldenCall[] = [
  { method: 'rollout', ref: 'orig_lrp.generate_rollout.start_layer0', perClass: false },
  { method: 'raw_attention', ref: 'orig_lrp.generate_attn_last_layer', perClass: false },
  { method: 'gradcam', ref: 'orig_lrp.generate_attn_gradcam', perClass: true },
  { method: 'lrp', ref: 'orig_lrp.generate_full_lrp', perClass: true, lrp: true },
  { method: 'partial_lrp', ref: 'orig_lrp.generate_LRP_last_layer', perClass: true, lrp: true },
  { method: 'transformer_attribution', ref: 'ours.generate_LRP.start_layerLAST', perClass: true, lrp: true },
  {
    method: 'transformer_attribution',
    ref: 'ours.generate_LRP.start_layer0',
    startLayer: 0,
    perClass: true,
    lrp: true,
  },
  { method: 'generic_attention', ref: 'generic_attention', perClass: true },
];

/** The method, with its start layer when one is set: `transformer_attribution@0`. */
export function bertCallLabel(c: BertGoldenCall): string {
  return `${c.method}${c.startLayer === undefined ? '' : `@${c.startLayer}`}`;
}

/** The golden tensor name of a call's output for a class choice (without the sequence prefix and `_f64`). */
export function bertCallName(c: BertGoldenCall, startLayerLast: number, target: 'pred' | 'other'): string {
  return c.ref.replace('LAST', String(startLayerLast)) + (c.perClass ? `.${target}` : '');
}
