import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { mergeExplanationFiles } from '../formats/expl-hdf5.js';
import { checkOutputPath } from '../util/files.js';
import { UsageError } from './common.js';

/**
 * `bench merge OUT SHARD…`: joins the outputs of `--shard K/N` runs into the files one machine would
 * have written. Today: `bench visualize` shards (every <method>/<vis-class>/results.hdf5 they hold).
 */
export interface MergeArgs {
  out: string;
  shards: string[];
}

/** Relative paths of the explanation files under a visualize output folder. */
function explanationFiles(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return out;
  for (const method of readdirSync(dir)) {
    const m = join(dir, method);
    if (!statSync(m).isDirectory()) continue;
    for (const vis of readdirSync(m))
      if (existsSync(join(m, vis, 'results.hdf5'))) out.push(join(method, vis, 'results.hdf5'));
  }
  return out.sort();
}

export async function runMerge(args: MergeArgs, log: (s: string) => void = (s) => console.log(s)): Promise<string[]> {
  if (args.shards.length === 0) throw new UsageError('give the shard output folders to merge');
  checkOutputPath(args.out, 'folder', 'the merged output');
  const shards = args.shards.map((s) => resolve(s));
  for (const s of shards) if (!existsSync(s)) throw new UsageError(`${s}: shard folder not found`);
  const files = [...new Set(shards.flatMap(explanationFiles))];
  if (files.length === 0) {
    throw new UsageError(
      `no mergeable outputs found: expected bench visualize folders holding <method>/<vis-class>/results.hdf5 in ${shards.join(', ')}`,
    );
  }
  const written: string[] = [];
  for (const rel of files) {
    const inputs = shards.map((s) => join(s, rel)).filter((f) => existsSync(f));
    if (inputs.length !== shards.length) {
      const missing = shards.filter((s) => !existsSync(join(s, rel)));
      throw new UsageError(
        `${rel} is missing from ${missing.join(', ')}: every shard must hold the same methods and vis classes`,
      );
    }
    const target = join(resolve(args.out), rel);
    const { rows } = await mergeExplanationFiles(target, inputs);
    log(`${target}: ${rows} rows from ${inputs.length} shards`);
    written.push(target);
  }
  return written;
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge <out> <shards..>',
  describe: 'join the output folders of --shard K/N runs (bench visualize) into one',
  builder: (y: Argv) =>
    y.positional('out', { type: 'string', describe: 'output folder', demandOption: true }).positional('shards', {
      type: 'string',
      array: true,
      describe: 'shard output folders',
      demandOption: true,
    }) as unknown as Argv<MergeArgs>,
  handler: async (args: ArgumentsCamelCase<MergeArgs>) => {
    await runMerge(args);
  },
};
