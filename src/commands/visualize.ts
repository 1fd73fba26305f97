import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { VisClass } from '../benchmarks/visualize.js';
import { methodOptionHelp } from '../methods/names.js';
import { type ModelArgs, SHARD_OPTION, STEAL_LOCK_OPTION, WORKERS_OPTION, withModelOptions } from './options.js';

export interface VisualizeArgs extends ModelArgs {
  data?: string;
  labels?: string;
  meta?: string;
  method: string[];
  'vis-class': VisClass;
  'start-layer': number;
  out?: string;
  name?: string;
  limit?: number;
  shard?: string;
  workers?: number;
  resume: boolean;
  'steal-lock'?: boolean;
  quiet: boolean;
}

export const visualizeCommand: CommandModule<object, VisualizeArgs> = {
  command: 'visualize',
  describe:
    'write explanation maps of an ImageNet-style validation set to HDF5 (the reference layout), for bench perturb',
  builder: (y: Argv) =>
    withModelOptions(y)
      .option('data', {
        type: 'string',
        describe:
          'ImageNet validation folder: class sub-folders named by WordNet id (sorted = class index), an ImageNet root holding val/, or a flat folder with a label file; default: the embedded synthetic folder',
      })
      .option('labels', {
        type: 'string',
        describe: 'label file for a flat folder: LOC_val_solution.csv or ILSVRC2012_validation_ground_truth.txt',
      })
      .option('meta', {
        type: 'string',
        describe: "class list for the label file: the devkit's meta.mat or LOC_synset_mapping.txt",
      })
      .option('method', {
        type: 'string',
        array: true,
        default: ['all'],
        describe: methodOptionHelp(),
      })
      .option('vis-class', {
        choices: ['top', 'target'] as const,
        default: 'top' as VisClass,
        describe: "class explained: the model's top class, or the ground-truth label",
      })
      .option('start-layer', {
        type: 'number',
        default: 1,
        describe: 'first block of the rollouts (the scripts use 1)',
      })
      .option('out', {
        type: 'string',
        describe:
          'output folder (default results/visualize/<model>/<name or timestamp>/); files go to <out>/<method>/<vis-class>/results.hdf5',
      })
      .option('name', { type: 'string', describe: 'run name for the default output folder' })
      .option('limit', { type: 'number', describe: 'only the first N images' })
      .option('shard', SHARD_OPTION)
      .option('workers', WORKERS_OPTION)
      .option('resume', {
        type: 'boolean',
        default: false,
        describe: 'continue an interrupted run in --out: rows already written are kept',
      })
      .option('steal-lock', STEAL_LOCK_OPTION)
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'no progress output',
      }) as unknown as Argv<VisualizeArgs>,
  handler: async (args: ArgumentsCamelCase<VisualizeArgs>) => {
    const { runVisualizeCommand } = await import('./visualize-run.js');
    await runVisualizeCommand(args);
  },
};
