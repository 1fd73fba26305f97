import { resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { fileIdentity } from '../benchmarks/run-dir.js';
import { runVisualize, type VisClass } from '../benchmarks/visualize.js';
import { openImageFolder } from '../datasets/imagenet-folder.js';
import { EMBEDDED } from '../embedded.js';
import { METHOD_NAMES, resolveMethods } from '../methods/registry.js';
import { checkOutputPath } from '../util/files.js';
import {
  defaultOutDir,
  loadModelFromArgs,
  type ModelArgs,
  SHARD_OPTION,
  shardFromArgs,
  startBackend,
  WORKERS_OPTION,
  withModelOptions,
} from './common.js';

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
  quiet: boolean;
}

export async function runVisualizeCommand(args: VisualizeArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  const methods = resolveMethods(args.method);
  const backend = await startBackend(args.backend, (s) => process.stderr.write(`${s}\n`));
  const { model, spec } = loadModelFromArgs(args);
  const data = args.data ?? EMBEDDED.imageFolder;
  if (!args.data) process.stderr.write(`data: embedded synthetic image folder (${data})\n`);
  const folderOptions = { labels: args.labels, meta: args.meta, size: model.config.img_size };
  const folder = openImageFolder(data, folderOptions);
  const shard = shardFromArgs(args.shard);
  const outDir = args.out ? resolve(args.out) : defaultOutDir('visualize', model.config.name, args.name, shard);
  const identity = {
    command: 'visualize',
    model: model.config,
    weights: fileIdentity(spec.weightsFile),
    data: resolve(data),
    images: folder.length,
    methods: methods.map((m) => m.name),
    visClass: args['vis-class'],
    startLayer: args['start-layer'],
    limit: args.limit ?? null,
    shard: shard ?? null,
  };
  process.stderr.write(
    `backend ${backend.name}; model ${model.config.name}; ${folder.length} images (${folder.labelSource}); methods ${methods.map((m) => m.name).join(', ')}; output ${outDir}\n`,
  );
  const s = await runVisualize({
    model,
    folder,
    methods,
    visClass: args['vis-class'],
    startLayer: args['start-layer'],
    outDir,
    identity,
    limit: args.limit,
    shard,
    parallel: {
      workers: args.workers ?? 1,
      backend: args.backend,
      spec,
      folder: { root: data, options: folderOptions },
    },
    resume: args.resume,
    quiet: args.quiet,
  });
  console.log(
    `${s.images} images${shard ? ` (shard ${shard.index}/${shard.count})` : ''}, ${s.secondsPerImage.toFixed(3)} s/image`,
  );
  for (const [m, f] of Object.entries(s.files)) console.log(`  ${m.padEnd(24)} ${f}`);
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
        describe: `method(s), repeatable or comma-separated, or 'all': ${METHOD_NAMES.join(', ')}`,
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
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'no progress output',
      }) as unknown as Argv<VisualizeArgs>,
  handler: async (args: ArgumentsCamelCase<VisualizeArgs>) => {
    await runVisualizeCommand(args);
  },
};
