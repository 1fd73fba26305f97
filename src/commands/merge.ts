import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { STEAL_LOCK_OPTION } from './options.js';

/**
 * `bench merge OUT SHARD…`: joins the finished outputs of `--shard K/N` runs of `bench seg`,
 * `bench visualize`, `bench perturb` or `bench eraser` into the files and numbers one machine would have produced. The
 * shards must be all N of one run (same request, every K once, each finished).
 */
export interface MergeArgs {
  out: string;
  shards: string[];
  json?: string;
  'steal-lock'?: boolean;
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge <out> <shards..>',
  describe: 'join the output folders of --shard K/N runs (bench seg, visualize, perturb or eraser) into one',
  builder: (y: Argv) =>
    y
      .positional('out', { type: 'string', describe: 'output folder', demandOption: true })
      .positional('shards', {
        type: 'string',
        array: true,
        describe: 'shard output folders (all N of one run)',
        demandOption: true,
      })
      .option('json', {
        type: 'string',
        describe:
          "also write what the command's --json would have written for one unsharded run (seg, perturb, eraser)",
      })
      .option('steal-lock', STEAL_LOCK_OPTION) as unknown as Argv<MergeArgs>,
  handler: async (args: ArgumentsCamelCase<MergeArgs>) => {
    const { runMerge } = await import('./merge-run.js');
    await runMerge(args);
  },
};
