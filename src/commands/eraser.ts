import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { EraserSplit } from '../datasets/eraser.js';
import { BACKEND_CHOICES, type BackendChoice } from '../engine/backend-choice.js';
import { methodOptionHelp } from '../methods/names.js';
import type { ForwardPrecision } from '../models/forward-precision.js';
import { FORWARD_OPTION, SHARD_OPTION, STEAL_LOCK_OPTION } from './options.js';

/** Weight files looked for in --model-dir, in this order. */
export const WEIGHT_NAMES = [
  'weights.safetensors',
  'model.safetensors',
  'pytorch_model.bin',
  'classifier.pt',
  'classifier/classifier.pt',
];

export interface EraserArgs {
  'data-dir'?: string;
  split: EraserSplit;
  'model-dir'?: string;
  'model-config'?: string;
  weights?: string;
  vocab?: string;
  'max-length'?: number;
  method: string[];
  'start-layer'?: number;
  'reset-per-k': boolean;
  out?: string;
  name?: string;
  json?: string;
  limit?: number;
  shard?: string;
  resume: boolean;
  'steal-lock'?: boolean;
  quiet: boolean;
  backend: BackendChoice;
  forward: ForwardPrecision;
}

export const eraserCommand: CommandModule<object, EraserArgs> = {
  command: 'eraser',
  describe:
    'ERASER movie-reviews benchmark: top-k word rationales from BERT explanations, scored by token-F1 (metrics.py)',
  builder: (y: Argv) =>
    y
      .option('data-dir', {
        type: 'string',
        describe: 'ERASER layout ({train,val,test}.jsonl + docs/); default: the embedded synthetic reviews',
      })
      .option('split', {
        choices: ['test', 'val', 'train'] as const,
        default: 'test' as EraserSplit,
        describe: 'annotation split',
      })
      .option('model-dir', {
        type: 'string',
        describe: `folder with config.json, vocab.txt and weights (${WEIGHT_NAMES.join(', ')}), optionally model_params.json; default: the embedded BERT`,
      })
      .option('model-config', { type: 'string', describe: 'HF BertConfig config.json (instead of --model-dir)' })
      .option('weights', {
        type: 'string',
        describe: 'weights: safetensors or PyTorch checkpoint (instead of --model-dir)',
      })
      .option('vocab', { type: 'string', describe: 'vocab.txt (instead of --model-dir)' })
      .option('max-length', {
        type: 'number',
        describe: "word pieces per document incl. [CLS]/[SEP] (default: model_params.json's, else 512 as in the paper)",
      })
      .option('method', {
        type: 'string',
        array: true,
        default: ['all'],
        describe: methodOptionHelp(),
      })
      .option('start-layer', {
        type: 'number',
        describe: 'first layer of the rollouts (default: transformer attribution the last layer, rollout 0)',
      })
      .option('reset-per-k', {
        type: 'boolean',
        default: false,
        describe:
          'write only the top-k words in file k (the pipeline accumulates top-5 ++ top-10 ++ …; same scores without ties, quirk Q25)',
      })
      .option('out', {
        type: 'string',
        describe: 'output folder (default results/eraser/<model>/<name or timestamp>/)',
      })
      .option('name', { type: 'string', describe: 'run name for the default output folder' })
      .option('json', { type: 'string', describe: 'also write summary.json to this path' })
      .option('limit', { type: 'number', describe: 'only the first N documents' })
      .option('shard', SHARD_OPTION)
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted run in --out' })
      .option('steal-lock', STEAL_LOCK_OPTION)
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
      .option('backend', {
        choices: BACKEND_CHOICES,
        default: 'auto' as BackendChoice,
        describe: 'TensorFlow.js backend',
      })
      .option('forward', FORWARD_OPTION) as unknown as Argv<EraserArgs>,
  handler: async (args: ArgumentsCamelCase<EraserArgs>) => {
    const { runEraserCommand } = await import('./eraser-run.js');
    await runEraserCommand(args);
  },
};
