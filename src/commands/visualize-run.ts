import { resolve } from 'node:path';
import { fileIdentity } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { runVisualize } from '../benchmarks/visualize.js';
import { openImageFolder } from '../datasets/imagenet-folder.js';
import { EMBEDDED } from '../embedded.js';
import { loadMethods } from '../methods/plugins.js';
import { forwardPrecision } from '../models/forward-precision.js';
import { checkOutputPath } from '../util/files.js';
import { defaultOutDir, loadModelFromArgs, shardFromArgs, startBackend } from './common.js';
import type { VisualizeArgs } from './visualize.js';

export async function runVisualizeCommand(args: VisualizeArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  const { methods } = await loadMethods(args.method);
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
    // The float64 forward moves the ill-conditioned maps: a run does not resume under the other forward. Absent
    // for f32, as before the option existed.
    ...(forwardPrecision() === 'f64' ? { forward: 'f64' } : {}),
    shard: shard ?? null,
  };
  process.stderr.write(
    `backend ${backend.name}; model ${model.config.name}; ${folder.length} images (${folder.labelSource}); methods ${methods.map((m) => m.name).join(', ')}; output ${outDir}\n`,
  );
  const s = await withRunLock(outDir, 'bench visualize', args['steal-lock'], () =>
    runVisualize({
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
    }),
  );
  console.log(
    `${s.images} images${shard ? ` (shard ${shard.index}/${shard.count})` : ''}, ${s.secondsPerImage.toFixed(3)} s/image`,
  );
  for (const [m, f] of Object.entries(s.files)) console.log(`  ${m.padEnd(24)} ${f}`);
}
