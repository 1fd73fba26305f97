/**
 * Does reading ahead pay (issue 12, docs/architecture.md "Concurrency and prefetching")? On the embedded
 * default (24 images, all six methods, the backend given):
 *  - bench visualize's seconds per image with no prefetch and with 2 images read and decoded ahead
 *    (VisualizeOptions.prefetch), in alternating runs, with the rows of both compared;
 *  - where one image's time goes: file read + sharp decode (off the main thread), resize to the model size
 *    (JavaScript, main thread), the explanation (main thread);
 *  - bench perturb's split between reading HDF5 rows (h5wasm, synchronous) and perturbing + classifying.
 *
 *   node --import tsx scripts/bench-prefetch.ts [--runs 6] [--backend wasm] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { perturbBatch } from '../src/benchmarks/perturbation-core.js';
import { explainLoadedVisImage, runVisualize } from '../src/benchmarks/visualize.js';
import { decodeImage, normalizeCHW, toUnitCHW } from '../src/data/image.js';
import { openImageFolder } from '../src/datasets/imagenet-folder.js';
import { EMBEDDED } from '../src/embedded.js';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { readExplanations } from '../src/formats/expl-hdf5.js';
import { METHODS } from '../src/methods/registry.js';
import { loadVit } from '../src/models/load.js';

const args = await yargs(hideBin(process.argv))
  .option('runs', { type: 'number', default: 6, describe: 'visualize runs per setting (alternating)' })
  .option('backend', { choices: BACKEND_CHOICES, default: 'wasm' as BackendChoice })
  .option('json', { type: 'string', describe: 'write the figures to this JSON file' })
  .strict()
  .parseAsync();

const backend = await initBackend(args.backend);
const model = loadVit({ configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights, norm: 'config' });
const c = model.config;
const size = { height: c.img_size, width: c.img_size };
const folder = openImageFolder(EMBEDDED.imageFolder, { size: c.img_size });
const dir = mkdtempSync(join(tmpdir(), 'bench-prefetch-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;
const loadBefore = loadavg();
console.log(
  `bench-prefetch — backend ${backend.name}; ${folder.length} images; ${cpus().length} CPU(s); load average ${loadBefore.map((l) => l.toFixed(2)).join(', ')}`,
);

// Where one image's time goes (3 passes over the folder).
let read = 0;
let resize = 0;
let explainMs = 0;
for (let r = 0; r < 3; r++) {
  for (const [i, item] of folder.items.entries()) {
    let t = performance.now();
    const rgb = await decodeImage(item.file);
    read += performance.now() - t;
    t = performance.now();
    const image = toUnitCHW(rgb, size);
    resize += performance.now() - t;
    t = performance.now();
    await explainLoadedVisImage(model, { image, label: item.label }, i, METHODS, 'top', 1);
    explainMs += performance.now() - t;
  }
}
const n = 3 * folder.length;
const split = { readDecodeMs: read / n, resizeMs: resize / n, explainMs: explainMs / n };
console.log(
  `one image: read + decode ${ms(split.readDecodeMs)} (off the main thread), resize ${ms(split.resizeMs)} (main thread), explain ${ms(split.explainMs)} (main thread)`,
);

// bench visualize with and without prefetching, alternating.
const perImage: Record<'0' | '2', number[]> = { '0': [], '2': [] };
let run = 0;
for (let r = 0; r < args.runs; r++) {
  for (const prefetch of r % 2 ? [2, 0] : [0, 2]) {
    const outDir = join(dir, `vis-${run++}-p${prefetch}`);
    const t0 = performance.now();
    await runVisualize({
      model,
      folder,
      methods: METHODS,
      visClass: 'top',
      startLayer: 1,
      outDir,
      identity: { command: 'visualize' },
      quiet: true,
      prefetch,
      log: () => {},
    });
    perImage[String(prefetch) as '0' | '2'].push((performance.now() - t0) / 1000 / folder.length);
  }
}
for (const [k, xs] of Object.entries(perImage))
  console.log(
    `visualize, prefetch ${k}: median ${median(xs).toFixed(4)} s/image (min ${Math.min(...xs).toFixed(4)}, max ${Math.max(...xs).toFixed(4)})`,
  );
// The rows do not depend on prefetching.
for (const m of METHODS) {
  const [a, b] = await Promise.all(
    [`vis-0-p0`, `vis-1-p2`].map((d) => readExplanations(join(dir, d, m.name, 'top', 'results.hdf5'))),
  );
  const [ra, rb] = [a!.readRows(0, a!.rows), b!.readRows(0, b!.rows)];
  const same =
    Buffer.from(ra.vis.buffer).equals(Buffer.from(rb.vis.buffer)) &&
    Buffer.from(ra.image.buffer).equals(Buffer.from(rb.image.buffer)) &&
    ra.target.join() === rb.target.join() &&
    a!.indices.join() === b!.indices.join();
  a!.close();
  b!.close();
  if (!same) throw new Error(`${m.name}: rows differ with and without prefetching`);
}
console.log('rows with and without prefetching: identical (all methods)');

// bench perturb: reading rows against perturbing and classifying, batches of 16, negative setting.
const classify = (batch: Float32Array, b: number): Float32Array =>
  tf.tidy(() => {
    const x = tf.tensor4d(batch, [b, c.in_chans, c.img_size, c.img_size]);
    return model.head(model.forward(x), c.final_norm_eps).logits.dataSync() as Float32Array;
  });
let readRows = 0;
let perturb = 0;
let rows = 0;
const r = await readExplanations(join(dir, 'vis-0-p0', 'transformer_attribution', 'top', 'results.hdf5'));
for (let start = 0; start < r.rows; start += 16) {
  const count = Math.min(16, r.rows - start);
  let t = performance.now();
  const batch = r.readRows(start, count);
  readRows += performance.now() - t;
  t = performance.now();
  await perturbBatch(batch.image, batch.vis, {
    negative: true,
    ties: 'torch',
    classify,
    normalize: (x) => normalizeCHW(x, c.mean, c.std),
    labels: batch.target,
  });
  perturb += performance.now() - t;
  rows += count;
}
r.close();
const perturbSplit = { readRowsMs: readRows / rows, perturbClassifyMs: perturb / rows };
console.log(
  `perturb, one image: read rows ${ms(perturbSplit.readRowsMs)} (h5wasm, synchronous), perturb + classify ${ms(perturbSplit.perturbClassifyMs)}`,
);
const loadAfter = loadavg();
console.log(`load average after: ${loadAfter.map((l) => l.toFixed(2)).join(', ')}`);
rmSync(dir, { recursive: true, force: true });

if (args.json) {
  const out = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, backend: backend.name },
    loadAverage: { before: loadBefore, after: loadAfter },
    images: folder.length,
    oneImage: split,
    visualizeSecondsPerImage: {
      prefetch0: { median: median(perImage['0']), runs: perImage['0'] },
      prefetch2: { median: median(perImage['2']), runs: perImage['2'] },
    },
    perturbOneImage: perturbSplit,
  };
  writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${args.json}`);
}
