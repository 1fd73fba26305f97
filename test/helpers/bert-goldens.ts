/**
 * The outputs of the padded BERT goldens (golden bert/P1, P2; scripts/golden/make-bert-geometries.py): which registry
 * method (and start layer) reproduces which official call. Shared by test/bert-geometries.test.ts and
 * scripts/precision.ts.
 */
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
