import { dirname, resolve } from 'node:path';
import { defaultRunDir, fileIdentity, findResumableRun } from '../benchmarks/run-dir.js';
import { withRunLock } from '../benchmarks/run-lock.js';
import { runSegmentation } from '../benchmarks/segmentation.js';
import { EMBEDDED } from '../embedded.js';
import { loadMethods } from '../methods/plugins.js';
import { forwardPrecision } from '../models/forward-precision.js';
import { expectedSegmentationTable, readExpectedFile } from '../reports/regression.js';
import { checkOutputPath, writeJsonAtomic } from '../util/files.js';
import { defaultOutDir, loadModelFromArgs, shardFromArgs, startBackend } from './common.js';
import type { SegArgs } from './seg.js';

const PAPER_NUMBERS = resolve(import.meta.dirname, '../../configs/paper.json');

export async function runSegCommand(args: SegArgs): Promise<void> {
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  if (args.json) checkOutputPath(args.json, 'file', '--json');
  const { methods } = await loadMethods(args.method);
  const backend = await startBackend(args.backend, (s) => process.stderr.write(`${s}\n`));
  const { model, spec } = loadModelFromArgs(args);
  const shard = shardFromArgs(args.shard);
  const dataFile = args.data ?? EMBEDDED.segData;
  if (!args.data) process.stderr.write(`data: embedded synthetic segmentation set (${dataFile})\n`);
  const identity = {
    command: 'seg',
    model: model.config,
    weights: fileIdentity(spec.weightsFile),
    data: fileIdentity(dataFile),
    methods: methods.map((m) => m.name),
    startLayer: args['start-layer'],
    limit: args.limit ?? null,
    // The float64 forward moves the ill-conditioned maps: a run does not resume under the other forward. Absent
    // for f32, as before the option existed.
    ...(forwardPrecision() === 'f64' ? { forward: 'f64' } : {}),
    shard: shard ?? null,
  };
  let outDir = args.out ? resolve(args.out) : undefined;
  if (!outDir && args.resume && !args.name) {
    outDir = findResumableRun(dirname(defaultRunDir('seg', model.config.name, 'x')), identity, 'summary.json');
    if (!outDir)
      throw new Error('--resume: no unfinished run of this model, data and methods under results/seg/; give --out DIR');
  }
  outDir ??= defaultOutDir('seg', model.config.name, args.name, shard);
  const paper =
    model.config.name === 'vit_base_patch16_224'
      ? expectedSegmentationTable(readExpectedFile(PAPER_NUMBERS))
      : undefined;
  process.stderr.write(
    `backend ${backend.name}; model ${model.config.name}; methods ${methods.map((m) => m.name).join(', ')}; output ${outDir}\n`,
  );
  const summary = await withRunLock(outDir, 'bench seg', args['steal-lock'], () =>
    runSegmentation({
      model,
      dataFile,
      methods,
      startLayer: args['start-layer'],
      outDir,
      identity,
      limit: args.limit,
      shard,
      parallel: { workers: args.workers ?? 1, backend: args.backend, spec },
      saveImg: args['save-img'],
      resume: args.resume,
      quiet: args.quiet,
      paper,
    }),
  );
  if (args.json) writeJsonAtomic(resolve(args.json), summary);
  console.log(
    `\n${summary.images} images${shard ? ` (shard ${shard.index}/${shard.count}; join the shards with bench merge)` : ''}, ${summary.secondsPerImage.toFixed(3)} s/image (all methods)`,
  );
  console.log('| method | pixel accuracy | mIoU | mAP |\n|---|---|---|---|');
  for (const [name, m] of Object.entries(summary.methods)) {
    console.log(`| ${name} | ${m.pixelAccuracy.toFixed(2)} | ${m.mIoU.toFixed(2)} | ${m.mAP.toFixed(2)} |`);
  }
  console.log(`\nwrote ${outDir}/summary.json, summary.md, per_image.csv`);
}
