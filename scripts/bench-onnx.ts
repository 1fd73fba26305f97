/**
 * Is onnxruntime-node (CPU) a faster engine than our wasm backend for the perturbation test's classifier pass
 * (issue 13, item 7)? In one run, on the same images:
 *
 *  1. Speed, ViT-B/16 geometry (deterministic random weights, scripts/random-vit-weights.ts): seconds per image
 *     of the forward-only logits pass on wasm (`VisionTransformer.logits`, the path `bench perturb` takes, on 1
 *     and on T worker threads) and on onnxruntime-node (the same weights as an ONNX model, src/models/onnx-vit.ts;
 *     intra-op threads 1 and T), one warm-up round, then `--rounds` timed rounds with the engines interleaved.
 *     Logits of every engine against wasm's: max |Δ| and top-1 agreement.
 *  2. Decisions on the golden perturbation cases (test/golden, e2e/perturb_S1, model vit/S1): every run of the
 *     official script whose maps can be rebuilt (raw maps stored), both tie rules, classified by onnxruntime:
 *     per-image hits against the golden `model_hits` / `perturbations_hits`.
 *
 *   npm run bench:onnx -- [--images 8] [--batch 8] [--rounds 3] [--threads 2] [--no-golden] [--json FILE]
 *
 * The machine's load average is recorded: timings on a shared machine are noisy, the ratios less so (the
 * engines take turns on the same images).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { perturbBatch, type TieRule } from '../src/benchmarks/perturbation-core.js';
import { decodeImage, normalizeCHW, toUnitCHW } from '../src/data/image.js';
import { initBackend } from '../src/engine/backend.js';
import { loadOnnxRuntime, type Ort, type OrtSession, ortSession as ortSessionOf } from '../src/engine/onnx.js';
import { WorkerPool } from '../src/engine/worker-pool.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { minMaxInPlace, upsampleBilinearTorch } from '../src/methods/postprocess.js';
import { vitOnnxModel } from '../src/models/onnx-vit.js';
import { VisionTransformer } from '../src/models/vit.js';
import { readVitConfig, type VitConfig, vitPreset } from '../src/models/vit-config.js';
import { vitWeightsFromStateDict } from '../src/models/vit-weights.js';
import { goldenPath, readGoldenTensors, readJson } from '../test/helpers/golden.js';
import type { OnnxBenchResult, OnnxBenchSetup, OnnxBenchTask } from './bench-onnx-worker.js';
import { randomStateDict } from './random-vit-weights.js';

const args = await yargs(hideBin(process.argv))
  .option('images', { type: 'number', default: 8, describe: 'images per timed round (the same for every engine)' })
  .option('batch', { type: 'number', default: 8, describe: 'images per classifier batch (every engine)' })
  .option('rounds', { type: 'number', default: 3, describe: 'timed rounds after one warm-up round' })
  .option('threads', { type: 'number', default: 2, describe: 'the second thread count measured (besides 1)' })
  .option('model', { type: 'string', default: 'vit_base_patch16_224' })
  .option('golden', { type: 'boolean', default: true, describe: 'check the golden perturbation cases (S1)' })
  .option('json', { type: 'string', describe: 'write the results to this JSON file' })
  .check((a) => {
    for (const k of ['images', 'batch', 'rounds', 'threads'] as const)
      if (!Number.isInteger(a[k]) || a[k] < 1) throw new Error(`--${k} must be a positive integer`);
    return true;
  })
  .strict()
  .parseAsync();

// ------------------------------------------------------------------------------------------ onnxruntime-node

function loadOrt(): Ort {
  const { ort, error } = loadOnnxRuntime();
  if (ort) return ort;
  process.stderr.write(`bench:onnx: ${error}\n`);
  process.exit(1);
}
const ort = loadOrt();
const ortSession = (model: Uint8Array, threads: number) => ortSessionOf(ort, model, threads);

/** Logits of `n` normalised images, `batch` at a time. */
async function ortLogits(
  s: OrtSession,
  cfg: VitConfig,
  images: Float32Array,
  n: number,
  batch: number,
): Promise<Float32Array> {
  const plane = cfg.in_chans * cfg.img_size * cfg.img_size;
  const out = new Float32Array(n * cfg.num_classes);
  for (let i = 0; i < n; i += batch) {
    const b = Math.min(batch, n - i);
    const x = new ort.Tensor('float32', images.slice(i * plane, (i + b) * plane), [
      b,
      cfg.in_chans,
      cfg.img_size,
      cfg.img_size,
    ]);
    out.set((await s.run({ input: x })).logits!.data, i * cfg.num_classes);
  }
  return out;
}

// ------------------------------------------------------------------------------------------ helpers

function argmaxRows(logits: Float32Array, classes: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / classes; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c]! > logits[r * classes + best]!) best = c;
    out.push(best);
  }
  return out;
}

function compareLogits(ref: Float32Array, got: Float32Array, classes: number) {
  let maxAbsDiff = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[i]! - got[i]!));
    maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]!));
  }
  const a = argmaxRows(ref, classes);
  const b = argmaxRows(got, classes);
  return { maxAbsDiff, maxAbsRef, top1Agree: a.filter((x, i) => x === b[i]).length, rows: a.length };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => loadavg().map((x) => Number(x.toFixed(2)));

// ------------------------------------------------------------------------------------------ 1. speed, ViT-B/16

async function speed() {
  const cfg = vitPreset(args.model);
  const T = args.threads;
  const N = args.images;
  const t0 = performance.now();
  const model = vitOnnxModel(cfg, randomStateDict(cfg));
  console.log(`ONNX model of ${cfg.name} (random weights): ${(model.length / 2 ** 20).toFixed(0)} MiB`);
  const threadCounts = T === 1 ? [1] : [1, T];
  const sessions = new Map<number, OrtSession>();
  for (const t of threadCounts) sessions.set(t, await ortSession(model, t));
  const pool = await WorkerPool.start<OnnxBenchSetup, OnnxBenchTask, OnnxBenchResult>(
    new URL('./bench-onnx-worker.ts', import.meta.url),
    T,
    { model: args.model },
  );
  console.log(`sessions and ${T} wasm worker(s) ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Deterministic images in [-1, 1] (already normalised), the same for every engine and round.
  const plane = cfg.in_chans * cfg.img_size * cfg.img_size;
  const images = new Float32Array(N * plane);
  let seed = 2024;
  for (let i = 0; i < images.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    images[i] = (seed / 2 ** 32) * 2 - 1;
  }

  /** wasm on `w` workers: the images split into `w` contiguous parts, one per worker. */
  const wasm = async (w: number) => {
    const per = Math.ceil(N / w);
    const tasks: OnnxBenchTask[] = [];
    for (let i = 0; i < N; i += per) {
      const n = Math.min(per, N - i);
      tasks.push({ images: images.slice(i * plane, (i + n) * plane), n, batch: args.batch });
    }
    const res = await pool.map(tasks);
    const logits = new Float32Array(N * cfg.num_classes);
    res.forEach((r, k) => {
      logits.set(r.logits, k * per * cfg.num_classes);
    });
    return { logits, backend: res[0]!.backend };
  };
  const engines: { label: string; run: () => Promise<Float32Array> }[] = [];
  let wasmBackend = '';
  for (const t of threadCounts) {
    engines.push({
      label: `wasm-${t}`,
      run: async () => {
        const r = await wasm(t);
        wasmBackend = r.backend;
        return r.logits;
      },
    });
    engines.push({ label: `ort-${t}`, run: () => ortLogits(sessions.get(t)!, cfg, images, N, args.batch) });
  }

  const times: Record<string, number[]> = Object.fromEntries(engines.map((e) => [e.label, []]));
  const logits: Record<string, Float32Array> = {};
  const loads: number[][] = [load()];
  for (let r = 0; r <= args.rounds; r++) {
    // Rotate the order each round, so that no engine always follows the same one.
    for (let k = 0; k < engines.length; k++) {
      const e = engines[(k + r) % engines.length]!;
      const s = performance.now();
      const out = await e.run();
      const perImage = (performance.now() - s) / 1000 / N;
      if (r === 0) logits[e.label] = out;
      else times[e.label]!.push(perImage);
      console.log(`  ${r === 0 ? 'warm-up' : `round ${r}`}  ${e.label.padEnd(7)} ${perImage.toFixed(3)} s/image`);
    }
    loads.push(load());
  }
  // `bench perturb` relies on an image's logits not depending on its batch (shared unperturbed passes, workers).
  const single = await ortLogits(sessions.get(1)!, cfg, images, N, 1);
  const ortDeterminism = {
    batch1EqualsBatchBitForBit: sameBits(single, logits['ort-1']!),
    threads1EqualsThreadsTBitForBit: sameBits(logits['ort-1']!, logits[`ort-${T}`] ?? logits['ort-1']!),
  };
  await pool.close();
  for (const s of sessions.values()) await s.release();

  const perImage = Object.fromEntries(
    Object.entries(times).map(([k, v]) => [
      k,
      { median: median(v), min: Math.min(...v), max: Math.max(...v), runs: v },
    ]),
  );
  const ratios: Record<string, number> = {};
  for (const t of threadCounts)
    ratios[`wasm-${t} / ort-${t}`] = perImage[`wasm-${t}`]!.median / perImage[`ort-${t}`]!.median;
  const bestWasm = Math.min(...threadCounts.map((t) => perImage[`wasm-${t}`]!.median));
  const bestOrt = Math.min(...threadCounts.map((t) => perImage[`ort-${t}`]!.median));
  ratios['best wasm / best ort'] = bestWasm / bestOrt;
  const agreement = Object.fromEntries(
    Object.keys(logits)
      .filter((k) => k !== 'wasm-1')
      .map((k) => [k, compareLogits(logits['wasm-1']!, logits[k]!, cfg.num_classes)]),
  );
  return {
    model: `${cfg.name} (random weights)`,
    images: N,
    batch: args.batch,
    rounds: args.rounds,
    wasmBackend,
    secondsPerImage: perImage,
    ratios,
    logitsAgainstWasm1: agreement,
    ortDeterminism,
    loadAverage: loads,
  };
}

// ------------------------------------------------------------------------------------------ 2. golden cases

interface S1Run {
  model_hits: number[];
  perturbations_hits: number[][];
  stable_order: { perturbations_hits: number[][] };
}

async function golden() {
  const dir = ['e2e', 'perturb_S1'] as const;
  const results = readJson<{ images: { file: string; label: number }[]; perturbation: Record<string, S1Run> }>(
    ...dir,
    'results.json',
  );
  const inter = readGoldenTensors(...dir, 'intermediates.safetensors');
  const cfg = readVitConfig(goldenPath('vit', 'S1', 'config.json'));
  const weightsFile = goldenPath('vit', 'S1', 'weights.safetensors');
  const sd = readSafetensors(weightsFile).tensors;
  await initBackend('wasm');
  const vit = new VisionTransformer(cfg, vitWeightsFromStateDict(sd, cfg, weightsFile));
  const sessions = new Map<number, OrtSession>();
  const onnx = vitOnnxModel(cfg, sd);
  for (const t of [1, 2]) sessions.set(t, await ortSession(onnx, t));

  const root = goldenPath(...dir, 'imagenet_val', 'val');
  const files = readdirSync(root)
    .sort()
    .flatMap((w, label) =>
      readdirSync(`${root}/${w}`)
        .sort()
        .map((f) => ({ file: `${root}/${w}/${f}`, label })),
    );
  const N = files.length;
  const P = cfg.img_size * cfg.img_size;
  const plane = cfg.in_chans * P;
  const images = new Float32Array(N * plane);
  for (const [i, f] of files.entries())
    images.set(toUnitCHW(await decodeImage(f.file), { height: cfg.img_size, width: cfg.img_size }), i * plane);
  const labels = files.map((f) => f.label);

  // Every distinct classified image: its logits on wasm and on both onnxruntime sessions.
  const seen = new Map<string, { wasm: Float32Array; ort: Float32Array[] }>();
  let maxAbsDiff = 0;
  let forwards = 0;
  let top1Disagree = 0;
  let threadDependent = 0;
  const C = cfg.num_classes;
  const keyOf = (xi: Float32Array) =>
    createHash('sha1')
      .update(new Uint8Array(xi.buffer, xi.byteOffset, xi.byteLength))
      .digest('base64');
  /** Classifies the images not seen yet on all three engines (one batch each); returns onnxruntime's logits. */
  const classify = async (x: Float32Array, n: number): Promise<Float32Array> => {
    const keys = Array.from({ length: n }, (_, i) => keyOf(x.subarray(i * plane, (i + 1) * plane)));
    const fresh = [...new Set(keys.filter((k) => !seen.has(k)))];
    if (fresh.length) {
      const batch = new Float32Array(fresh.length * plane);
      fresh.forEach((k) => {
        const i = keys.indexOf(k);
        batch.set(x.subarray(i * plane, (i + 1) * plane), fresh.indexOf(k) * plane);
      });
      const m = fresh.length;
      const wasm = tf.tidy(() =>
        vit.logits(tf.tensor4d(batch, [m, cfg.in_chans, cfg.img_size, cfg.img_size]), cfg.final_norm_eps),
      );
      const w = wasm.dataSync() as Float32Array;
      wasm.dispose();
      const o = [
        await ortLogits(sessions.get(1)!, cfg, batch, m, m),
        await ortLogits(sessions.get(2)!, cfg, batch, m, m),
      ];
      fresh.forEach((k, i) => {
        const wi = w.slice(i * C, (i + 1) * C);
        const oi = o.map((l) => l.slice(i * C, (i + 1) * C));
        seen.set(k, { wasm: wi, ort: oi });
        forwards++;
        for (const l of oi) {
          const c = compareLogits(wi, l, C);
          maxAbsDiff = Math.max(maxAbsDiff, c.maxAbsDiff);
          if (c.top1Agree !== 1) top1Disagree++;
        }
        if (!sameBits(oi[0]!, oi[1]!)) threadDependent++;
      });
    }
    const out = new Float32Array(n * C);
    keys.forEach((k, i) => {
      out.set(seen.get(k)!.ort[0]!, i * C);
    });
    return out; // the decisions are onnxruntime's (1 thread)
  };
  const normalize = (chw: Float32Array) => normalizeCHW(chw, cfg.mean, cfg.std);

  const cases: { run: string; ties: TieRule; imageSteps: number; mismatches: number }[] = [];
  const skipped: string[] = [];
  for (const [name, run] of Object.entries(results.perturbation)) {
    const [method, visClass, pert] = name.split('.') as [string, string, string];
    const raw = inter.get(`vis.${method}.${visClass}.raw`)?.data as Float32Array | undefined;
    if (!raw) {
      skipped.push(name);
      continue;
    }
    const g = cfg.img_size / cfg.patch_size;
    const vis = new Float32Array(N * P);
    for (let i = 0; i < N; i++) {
      const m = upsampleBilinearTorch(raw.subarray(i * g * g, (i + 1) * g * g), g, g, cfg.patch_size);
      minMaxInPlace(m);
      vis.set(m, i * P);
    }
    for (const ties of ['torch', 'stable'] as TieRule[]) {
      // Batches of 16, as the official script classifies them.
      let mismatches = 0;
      for (let s = 0; s < N; s += 16) {
        const e = Math.min(N, s + 16);
        const rs = await perturbBatch(images.subarray(s * plane, e * plane), vis.subarray(s * P, e * P), {
          negative: pert === 'neg',
          ties,
          classify,
          normalize,
          labels: labels.slice(s, e),
        });
        const expected = ties === 'torch' ? run.perturbations_hits : run.stable_order.perturbations_hits;
        rs.forEach((r, j) => {
          if (Number(r.modelHit) !== run.model_hits[s + j]) mismatches++;
          r.steps.forEach((st, k) => {
            if (Number(st.hit) !== expected[k]![s + j]) mismatches++;
          });
        });
      }
      cases.push({ run: name, ties, imageSteps: N * 10, mismatches });
    }
  }
  for (const s of sessions.values()) await s.release();
  return {
    model: 'vit/S1 (golden weights)',
    images: N,
    cases: cases.length,
    casesWithMismatch: cases.filter((c) => c.mismatches > 0).length,
    decisionsChecked: cases.reduce((n, c) => n + c.imageSteps, 0),
    decisionMismatches: cases.reduce((n, c) => n + c.mismatches, 0),
    skipped: skipped.map((s) => `${s} (no raw map stored in the golden data)`),
    distinctForwards: forwards,
    ortVsWasm: { maxAbsDiff, top1Disagreements: top1Disagree, comparisons: forwards * 2 },
    /** Images whose onnxruntime logits differ in any bit between 1 and 2 intra-op threads. */
    ortThreadDependent: threadDependent,
    perCase: cases,
  };
}

// ------------------------------------------------------------------------------------------ main

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
  node: process.version,
  onnxruntimeNode: ort.env.versions.node,
  loadAverageAtStart: load(),
};
console.log(
  `bench:onnx — ${machine.cores} CPU(s): ${machine.cpu}; onnxruntime-node ${machine.onnxruntimeNode}; load ${machine.loadAverageAtStart.join(' ')}`,
);
const speedResult = await speed();
console.log('\n| engine | median s/image | min | max |\n|---|---|---|---|');
for (const [k, s] of Object.entries(speedResult.secondsPerImage))
  console.log(`| ${k} | ${s.median.toFixed(3)} | ${s.min.toFixed(3)} | ${s.max.toFixed(3)} |`);
for (const [k, v] of Object.entries(speedResult.ratios)) console.log(`${k}: ${v.toFixed(2)}×`);
for (const [k, v] of Object.entries(speedResult.logitsAgainstWasm1))
  console.log(
    `${k} vs wasm-1: logits max|Δ| ${v.maxAbsDiff.toExponential(2)} (max|logit| ${v.maxAbsRef.toFixed(2)}), top-1 ${v.top1Agree}/${v.rows}`,
  );
console.log(`onnxruntime determinism: ${JSON.stringify(speedResult.ortDeterminism)}`);
const goldenResult = args.golden ? await golden() : undefined;
if (goldenResult) {
  console.log(
    `golden perturbation cases (S1): ${goldenResult.cases} cases, ${goldenResult.decisionsChecked} decisions, ${goldenResult.decisionMismatches} differ from the official script's; ` +
      `onnxruntime vs wasm on ${goldenResult.distinctForwards} distinct images: max|Δ| ${goldenResult.ortVsWasm.maxAbsDiff.toExponential(2)}, ${goldenResult.ortVsWasm.top1Disagreements} top-1 disagreements, ${goldenResult.ortThreadDependent} thread-dependent; skipped: ${goldenResult.skipped.join(', ') || 'none'}`,
  );
}
const bar = 2;
const fastest = speedResult.ratios['best wasm / best ort']!;
const sameDecisions = goldenResult ? goldenResult.decisionMismatches === 0 : undefined;
const verdict = {
  bar: `onnxruntime ≥ ${bar}× faster per image than wasm on ViT-B/16, and the same top-1 decisions on every golden perturbation case`,
  speedupBestVsBest: fastest,
  speedMet: fastest >= bar,
  sameDecisions,
  adopt: fastest >= bar && sameDecisions === true,
};
console.log(
  `verdict: ${verdict.adopt ? 'adopt' : 'do not adopt'} (best-vs-best speed-up ${fastest.toFixed(2)}×, same decisions ${sameDecisions})`,
);
if (args.json) {
  mkdirSync(dirname(args.json), { recursive: true });
  const out = {
    date: new Date().toISOString(),
    machine: { ...machine, loadAverageAtEnd: load() },
    speed: speedResult,
    golden: goldenResult,
    verdict,
  };
  writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${args.json}`);
}
