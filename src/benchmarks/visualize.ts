import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeCHW, normalizeCHWF64 } from '../data/image.js';
import type { ImageFolder, ImageFolderOptions } from '../datasets/imagenet-folder.js';
import type { BackendChoice } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { resultsInOrder, siblingModule, WorkerPool } from '../engine/worker-pool.js';
import { type ExplAttrs, ExplanationWriter } from '../formats/expl-hdf5.js';
import { explain } from '../methods/explain.js';
import { pluginFiles } from '../methods/plugins.js';
import type { ExplanationMethod } from '../methods/types.js';
import { forwardPrecision } from '../models/forward-precision.js';
import type { ModelSpec } from '../models/load.js';
import type { VisionTransformer } from '../models/vit.js';
import { diskFullOr, writeJsonAtomic } from '../util/files.js';
import { stopPoint, watchStop } from '../util/interrupt.js';
import { prefetcher } from '../util/prefetch.js';
import { Progress } from '../util/progress.js';
import { beginRun, type RunControl } from './run-dir.js';
import { type Shard, shardIndices } from './shards.js';

/**
 * Explanation export (docs/benchmarks.md#explanation-export, `generate_visualizations.py`): for every image, each
 * method's final map is appended to `<out>/<method>/<top|target>/results.hdf5` beside the un-normalised image and
 * its label, in the reference's HDF5 layout (h5py reads it; `bench perturb` and the official perturbation script
 * consume it). Rows carry their data-set index, so a run resumes by skipping the rows every file already holds, and
 * shards (`--shard K/N`: images i with i mod N = K) merge back into one file.
 */
export type VisClass = 'top' | 'target';

export interface VisualizeOptions extends RunControl {
  model: VisionTransformer;
  folder: ImageFolder;
  methods: readonly ExplanationMethod[];
  visClass: VisClass;
  startLayer: number;
  shard?: Shard;
  /** Explain on this many worker threads (each opens the folder and loads the model itself). */
  parallel?: { workers: number; backend: BackendChoice; spec: ModelSpec; folder: VisWorkerSetup['folder'] };
  /** Called after each image's rows are written (tests use it to simulate an interruption). */
  onImageDone?: (index: number) => void;
  /**
   * Images read and decoded ahead while this thread explains (p-limit, util/prefetch.ts); 0 = none.
   * Default 2. Outputs do not depend on it. Not used with worker threads (each loads its own images).
   */
  prefetch?: number;
}

export interface VisualizeSummary {
  benchmark: 'visualize';
  model: string;
  data: string;
  visClass: VisClass;
  startLayer: number;
  shard: Shard | null;
  images: number;
  files: Record<string, string>;
  constantMaps: Record<string, number>;
  secondsPerImage: number;
}

/** One image's maps, wherever they were computed. */
export interface VisImageResult {
  index: number;
  /** The [0, 1] image (CHW), as the file stores it. */
  image: Float32Array;
  label: number;
  seconds: number;
  methods: { method: string; map: Float32Array; constant: boolean }[];
}

export interface VisWorkerSetup {
  backend: BackendChoice;
  spec: ModelSpec;
  folder: { root: string; options: ImageFolderOptions };
  visClass: VisClass;
  startLayer: number;
  /** Plug-in method files (absolute), which each worker imports by path. */
  plugins: string[];
}

export interface VisWorkerItem {
  index: number;
  /** The methods whose row for this image is still missing. */
  methods: string[];
}

/** Explains image `i` of the folder with `methods` in one shared pass. */
export async function explainVisImage(
  model: VisionTransformer,
  folder: ImageFolder,
  i: number,
  methods: readonly ExplanationMethod[],
  visClass: VisClass,
  startLayer: number,
): Promise<VisImageResult> {
  return explainLoadedVisImage(model, await folder.load(i), i, methods, visClass, startLayer);
}

/** Explains image `i`, already loaded (`ImageFolder.load`), with `methods` in one shared pass. */
export async function explainLoadedVisImage(
  model: VisionTransformer,
  { image, label }: { image: Float32Array; label: number },
  i: number,
  methods: readonly ExplanationMethod[],
  visClass: VisClass,
  startLayer: number,
): Promise<VisImageResult> {
  const c = model.config;
  const t0 = performance.now();
  const x = tf.tensor4d(normalizeCHW(image, c.mean, c.std), [1, c.in_chans, c.img_size, c.img_size]);
  const ex = await explain(model, x, methods, {
    classes: visClass === 'top' ? 'top' : label,
    startLayer,
    input64: forwardPrecision() === 'f64' ? normalizeCHWF64(image, c.mean, c.std) : undefined,
  });
  x.dispose();
  return {
    index: i,
    image,
    label,
    seconds: (performance.now() - t0) / 1000,
    methods: ex.methods.map((m) => ({ method: m.method, map: m.map[0]!, constant: m.constant[0]! })),
  };
}

export function visFile(outDir: string, method: string, visClass: VisClass): string {
  return join(outDir, method, visClass, 'results.hdf5');
}

export async function runVisualize(opts: VisualizeOptions): Promise<VisualizeSummary> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { model, folder, methods, outDir, visClass } = opts;
  const c = model.config;
  const existing = beginRun(outDir, opts.identity, opts.resume);
  const attrs = (method: string): ExplAttrs => ({
    method,
    vis_class: visClass,
    model: c.name,
    img_size: c.img_size,
    start_layer: opts.startLayer,
    written_by: 'bench visualize',
  });
  const writers = new Map<string, ExplanationWriter>();
  let failed = false;
  try {
    for (const m of methods) {
      const file = visFile(outDir, m.name, visClass);
      const layout = { height: c.img_size, width: c.img_size, attrs: attrs(m.name) };
      // `.broken`: a recovery of this file was itself interrupted (see openOrRecover).
      const w =
        existing && (existsSync(file) || existsSync(`${file}.broken`))
          ? await ExplanationWriter.openOrRecover(file, layout)
          : await ExplanationWriter.create(file, layout);
      if (w.repaired) log(`warning: ${file}: ${w.repaired}`);
      writers.set(m.name, w);
    }
    const total = Math.min(folder.length, opts.limit ?? folder.length);
    const todo = shardIndices(total, opts.shard);
    const done = (i: number) => methods.every((m) => writers.get(m.name)!.has(i));
    const pending = todo.filter((i) => !done(i));
    if (existing) log(`resuming ${outDir}: ${todo.length - pending.length} of ${todo.length} images already written`);
    const progress = new Progress('visualize', todo.length, todo.length - pending.length, opts.quiet);
    const constantMaps: Record<string, number> = Object.fromEntries(methods.map((m) => [m.name, 0]));
    let seconds = 0;
    let count = todo.length - pending.length;
    const items = pending.map((i) => ({
      index: i,
      methods: methods.filter((m) => !writers.get(m.name)!.has(i)).map((m) => m.name),
    }));
    const par = opts.parallel;
    const pool = par
      ? await WorkerPool.startFor<VisWorkerSetup, VisWorkerItem, VisImageResult>(
          siblingModule('./visualize-worker', import.meta.url),
          par.workers,
          items.length,
          {
            backend: par.backend,
            spec: par.spec,
            folder: par.folder,
            visClass,
            startLayer: opts.startLayer,
            plugins: pluginFiles(methods),
          },
        )
      : undefined;
    const unwatch = watchStop();
    try {
      // Images are explained here or on worker threads; rows are written in data-set order either way.
      // Here, the next images are read and decoded while this one is explained.
      const loads = prefetcher(items.length, (k) => folder.load(items[k]!.index), { ahead: opts.prefetch ?? 2 });
      let k = 0;
      const results = resultsInOrder(items, pool, async (item) =>
        explainLoadedVisImage(
          model,
          await loads.get(k++),
          item.index,
          methods.filter((m) => item.methods.includes(m.name)),
          visClass,
          opts.startLayer,
        ),
      );
      for await (const r of results) {
        const i = r.index;
        seconds += r.seconds;
        for (const m of r.methods) {
          if (m.constant) {
            constantMaps[m.method]!++;
            log(
              `warning: ${m.method}: constant map for image ${i} (${folder.items[i]!.file}); written as zeros (the reference writes NaN)`,
            );
          }
          const w = writers.get(m.method)!;
          try {
            w.append([{ vis: m.map, image: r.image, target: r.label, index: i }]);
          } catch (e) {
            throw diskFullOr(e, visFile(outDir, m.method, visClass));
          }
        }
        opts.onImageDone?.(i);
        progress.update(++count);
        await stopPoint(count, todo.length);
      }
    } finally {
      unwatch();
      await pool?.close();
    }
    progress.stop();
    const summary: VisualizeSummary = {
      benchmark: 'visualize',
      model: c.name,
      data: folder.root,
      visClass,
      startLayer: opts.startLayer,
      shard: opts.shard ?? null,
      images: todo.length,
      files: Object.fromEntries(methods.map((m) => [m.name, visFile(outDir, m.name, visClass)])),
      constantMaps,
      secondsPerImage: pending.length ? seconds / pending.length : 0,
    };
    writeJsonAtomic(join(outDir, `visualize-${visClass}.json`), summary);
    return summary;
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    closeWriters(writers.values(), failed);
  }
}

/**
 * Closes the explanation files. After a failure, that failure is the error to report, not a second one from
 * closing a file it left mid-write (a full disk); after a success, a close error is reported.
 */
function closeWriters(writers: Iterable<ExplanationWriter>, failed: boolean): void {
  let first: unknown;
  for (const w of writers) {
    try {
      w.close();
    } catch (e) {
      first ??= diskFullOr(e, w.file);
    }
  }
  if (first !== undefined && !failed) throw first;
}
