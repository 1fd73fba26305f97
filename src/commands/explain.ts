import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { methodOptionHelp } from '../methods/names.js';
import { type ModelArgs, withModelOptions } from './options.js';

export interface ExplainArgs extends ModelArgs {
  input?: string;
  text?: string;
  'token-ids'?: string;
  vocab?: string;
  'model-dir'?: string;
  'max-length'?: number;
  html?: string;
  method: string[];
  class?: number;
  'start-layer'?: number;
  out?: string;
  json?: string;
}

export const explainCommand: CommandModule<object, ExplainArgs> = {
  command: 'explain',
  describe: 'explain one image with one or more methods (maps to PNG overlays and/or JSON)',
  builder: (y: Argv) =>
    withModelOptions(y)
      .option('input', {
        type: 'string',
        describe:
          'PNG/JPEG image (resized to the model size with Pillow-exact bilinear, then normalised) or .npy float32 [1,3,H,W] / [3,H,W] already normalised; default: an embedded sample image',
      })
      .option('method', {
        type: 'string',
        array: true,
        default: ['transformer_attribution'],
        describe: `${methodOptionHelp()} (aliases: attn_last_layer, attn_gradcam, full_lrp, lrp_last_layer)`,
      })
      .option('class', {
        type: 'number',
        describe: 'class index to explain (default: the top class of the model each method runs on)',
      })
      .option('start-layer', {
        type: 'number',
        describe:
          "first block entering the rollouts of rollout and transformer_attribution (default: the reference scripts' choice: ViT 1; BERT transformer attribution the last layer, rollout 0)",
      })
      .option('text', {
        type: 'string',
        describe: "BERT: the text to explain (tokenised with the model's vocab.txt, [CLS] … [SEP])",
      })
      .option('token-ids', {
        type: 'string',
        describe: 'BERT: comma-separated token ids instead of --text, e.g. 1,17,33,2',
      })
      .option('vocab', { type: 'string', describe: "BERT: vocab.txt (default: the model folder's)" })
      .option('model-dir', {
        type: 'string',
        describe: 'BERT: folder with config.json, vocab.txt and weights (default with --text: the embedded BERT)',
      })
      .option('max-length', {
        type: 'number',
        describe: 'BERT: word pieces incl. [CLS]/[SEP]; longer texts are truncated with a warning',
      })
      .option('html', {
        type: 'string',
        describe: 'BERT: write an HTML page of the tokens coloured by relevance, one row per method',
      })
      .option('out', { type: 'string', describe: 'write a PNG: the input and one heat-map overlay panel per method' })
      .option('json', {
        type: 'string',
        describe:
          'write { backend, model, logits, predicted, methods: { <name>: { class, raw, rawShape, map, mapShape } } } (flat row-major arrays; - for stdout)',
      }) as unknown as Argv<ExplainArgs>,
  handler: async (args: ArgumentsCamelCase<ExplainArgs>) => {
    const { runExplain } = await import('./explain-run.js');
    await runExplain(args);
  },
};
