import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { methodOptionHelp } from '../methods/names.js';
import { type ModelArgs, SHARD_OPTION, STEAL_LOCK_OPTION, WORKERS_OPTION, withModelOptions } from './options.js';

export interface SegArgs extends ModelArgs {
  data?: string;
  method: string[];
  'start-layer': number;
  out?: string;
  name?: string;
  json?: string;
  limit?: number;
  shard?: string;
  workers?: number;
  'save-img': number;
  resume: boolean;
  'steal-lock'?: boolean;
  quiet: boolean;
}

export const segCommand: CommandModule<object, SegArgs> = {
  command: 'seg',
  describe:
    'ImageNet-segmentation benchmark (pixel accuracy, mIoU, mAP) on gtsegs_ijcv.mat or the embedded synthetic set',
  builder: (y: Argv) =>
    withModelOptions(y)
      .option('data', {
        type: 'string',
        describe:
          'gtsegs_ijcv.mat (MATLAB v7.3), the same layout as plain HDF5, or a Level-5 MAT file; default: the embedded synthetic set',
      })
      .option('method', {
        type: 'string',
        array: true,
        default: ['all'],
        describe: methodOptionHelp('method(s), repeatable or comma-separated, evaluated in one pass over the data'),
      })
      .option('start-layer', {
        type: 'number',
        default: 1,
        describe: 'first block of the rollouts (the benchmark script uses 1)',
      })
      .option('out', { type: 'string', describe: 'output folder (default results/seg/<model>/<name or timestamp>/)' })
      .option('name', { type: 'string', describe: 'run name for the default output folder' })
      .option('json', { type: 'string', describe: 'also write summary.json to this path' })
      .option('limit', { type: 'number', describe: 'evaluate only the first N images' })
      .option('shard', SHARD_OPTION)
      .option('workers', WORKERS_OPTION)
      .option('save-img', {
        type: 'number',
        default: 0,
        describe: 'write image/mask/overlay panels of the first N images to <out>/images/',
      })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe: 'continue an interrupted run (same --out, or the latest matching one)',
      })
      .option('steal-lock', STEAL_LOCK_OPTION)
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' }) as unknown as Argv<SegArgs>,
  handler: async (args: ArgumentsCamelCase<SegArgs>) => {
    const { runSegCommand } = await import('./seg-run.js');
    await runSegCommand(args);
  },
};
