/**
 * Precision report (issue 15): how far bench's numbers are from the official code run in float64, next to how far
 * the official float32 code is from it, on every golden case that has a float64 twin.
 *
 *   npm run precision -- [--backend wasm --backend cpu] [--skip-e2e] [--json FILE]
 *
 * Map level, for every ViT golden config × case × class × method, and every padded BERT golden (bert/P1, P2) ×
 * sequence × class × method (class 'top' = predicted, 'target' = the other class): d = max|map − map₆₄| / max|map₆₄|
 * on the raw maps, for bench (d_bench) and for the official float32 run (d_official), and their ratio. End to end, for
 * each golden run of the official scripts (S1, and the geometry G2 on the same inputs): the segmentation metrics of
 * `bench seg` on the e2e golden `.mat`, and the AUCs of `bench visualize` + `bench perturb` on the e2e golden image
 * folder, against the official float32 (`results.json`) and float64 (`results_f64.json`) runs. Each backend runs in its own child process (one backend per process).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type BackendChoice, initBackend } from '../src/engine/backend.js';
import { encodeSafetensors } from '../src/formats/safetensors.js';
import { explain, explainTokens } from '../src/methods/explain.js';
import { findMethod, METHODS, PAPER_METHODS } from '../src/methods/registry.js';
import { forwardPrecision } from '../src/models/forward-precision.js';
import { describeForward } from '../src/models/host-f64.js';
import { readVitConfig } from '../src/models/vit-config.js';
import { BERT_GOLDEN_CALLS, bertCallLabel, bertCallName, goldenBert } from '../test/helpers/bert-goldens.js';
import { maxAbs, maxAbsDiff } from '../test/helpers/compare.js';
import { type FormulaImage, formulaStateDict } from '../test/helpers/formula-weights.js';
import {
  caseInput,
  GOLDEN_NAME,
  type GoldenCase,
  goldenArray,
  goldenPath,
  listGolden,
  loadGoldenVit,
  readGoldenTensors,
  readJson,
  vitGoldenCases,
  vitGoldenConfigs,
} from '../test/helpers/golden.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const args = await yargs(hideBin(process.argv))
  .scriptName('precision')
  .option('backend', { type: 'string', array: true, default: ['wasm', 'cpu'], describe: 'backends to measure' })
  .option('skip-e2e', { type: 'boolean', default: false, describe: 'map level only' })
  .option('json', { type: 'string', describe: 'write the report here (keep the latest under results/precision/)' })
  .option('child', { type: 'string', hidden: true })
  .option('child-out', { type: 'string', hidden: true })
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`precision: error: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .parseAsync();

interface MapRow {
  backend: string;
  config: string;
  case: string;
  class: 'top' | 'target';
  method: string;
  dBench: number;
  dOfficial: number;
  ratio: number;
}

interface E2eRow {
  backend: string;
  /** 'seg (S1)', 'perturb (G2)', …: the benchmark and the model of the golden run. */
  benchmark: string;
  method: string;
  /** seg: the metric; perturb: `<vis class> <setting>`. */
  what: string;
  official32: number;
  official64: number;
  bench: number;
  /** |bench − float64| − |official32 − float64|: ≤ 0 means at least as close as the official float32 run. */
  excess: number;
}

interface ChildReport {
  backend: string;
  maps: MapRow[];
  /** `config/case class method` whose golden maps this golden copy does not hold (pruned from the repository's copy). */
  missing: string[];
  e2e: E2eRow[];
}

/** The methods the official golden runs hold (the paper's six). */
const GOLDEN_METHODS = METHODS.filter((m) => m.name in GOLDEN_NAME);

/** d_bench / d_official; where the official float32 map equals the float64 one (d_official 0): 1 if bench's does too, else ∞. */
function ratioOf(dBench: number, dOfficial: number): number {
  if (dOfficial > 0) return dBench / dOfficial;
  return dBench > 0 ? Number.POSITIVE_INFINITY : 1;
}
/** Issue 15's end-to-end bar: at least as close to float64 as the official float32 number, or within 0.05 points. */
const failsBar = (r: E2eRow) => r.excess > 1e-9 && Math.abs(r.bench - r.official64) > 0.05;
const fmtRatio = (x: number) => `${Number.isFinite(x) ? x.toFixed(2) : '∞'}${x > 1 ? ' ✗' : ''}`;

async function mapLevel(backend: string): Promise<{ rows: MapRow[]; missing: string[] }> {
  const rows: MapRow[] = [];
  const missing: string[] = [];
  for (const config of vitGoldenConfigs()) {
    const model = await loadGoldenVit(config, backend as BackendChoice);
    for (const caseName of vitGoldenCases(config)) {
      const meta = readJson<GoldenCase & { image?: FormulaImage }>('vit', config, `case-${caseName}.json`);
      const g = readGoldenTensors('vit', config, `case-${caseName}.safetensors`);
      const input = caseInput(g, meta);
      for (const vis of ['top', 'target'] as const) {
        const ex = await explain(model, input, GOLDEN_METHODS, {
          classes: vis === 'top' ? 'top' : meta.target_class,
          startLayer: 1,
        });
        for (const m of ex.methods) {
          const ref = GOLDEN_NAME[m.method]!;
          if (!g.has(`${ref}.${vis}.raw`) || !g.has(`${ref}.${vis}.raw_f64`)) {
            missing.push(`${config}/${caseName} ${vis} ${m.method}`);
            continue;
          }
          const raw = goldenArray(g, `${ref}.${vis}.raw`);
          const raw64 = goldenArray(g, `${ref}.${vis}.raw_f64`);
          const scale = maxAbs(raw64);
          const dBench = maxAbsDiff(m.raw[0]!, raw64) / scale;
          const dOfficial = maxAbsDiff(raw, raw64) / scale;
          rows.push({
            backend,
            config,
            case: caseName,
            class: vis,
            method: m.method,
            dBench,
            dOfficial,
            ratio: ratioOf(dBench, dOfficial),
          });
        }
      }
      input.dispose();
    }
  }
  return { rows, missing };
}

/** The BERT methods of the padded goldens (bert/P1, P2: scripts/golden/make-bert-geometries.py) and their calls. */
/** The BERT golden outputs of the paper's methods (the goldens also hold generic attention's, not measured here). */
const BERT_CASES = BERT_GOLDEN_CALLS.filter((c) => PAPER_METHODS.some((m) => m.name === c.method));

/** The BERT golden configs with float64 twins (formula weights, padded sequences). */
function bertConfigs(): string[] {
  // The folders (not the README files) other than tiny_a, the shared golden, which has no float64 twins.
  return listGolden('bert').filter((d) => !d.includes('.') && d !== 'tiny_a');
}

/** Map level on the BERT goldens: 'top' = the predicted class, 'target' = the other class of each sequence. */
async function bertMapLevel(backend: string): Promise<MapRow[]> {
  const rows: MapRow[] = [];
  for (const config of bertConfigs()) {
    const { meta, g, model } = goldenBert(config);
    for (const seq of meta.sequences) {
      const ids = Int32Array.from(seq.input_ids);
      const mask = Int32Array.from(seq.attention_mask);
      for (const [vis, classes] of [
        ['top', 'top'],
        ['target', seq.other_class],
      ] as const) {
        for (const c of BERT_CASES) {
          if (!c.perClass && vis === 'target') continue;
          const ex = await explainTokens(model, ids, mask, 1, ids.length, [findMethod(c.method)], {
            classes,
            startLayer: c.startLayer,
          });
          const call = bertCallName(c, meta.start_layer_last, vis === 'top' ? 'pred' : 'other');
          const raw64 = goldenArray(g, `${seq.name}.${call}_f64`);
          const scale = maxAbs(raw64);
          const dBench = maxAbsDiff(ex.methods[0]!.raw[0]!, raw64) / scale;
          const dOfficial = maxAbsDiff(goldenArray(g, `${seq.name}.${call}`), raw64) / scale;
          rows.push({
            backend,
            config,
            case: seq.name,
            class: vis,
            method: bertCallLabel(c),
            dBench,
            dOfficial,
            ratio: ratioOf(dBench, dOfficial),
          });
        }
      }
    }
  }
  return rows;
}

function bench(argv: string[]): void {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'bench.js'), ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench ${argv.join(' ')} failed:\n${r.stderr}`);
}

/** The golden end-to-end runs: the official scripts with a model on the S1 end-to-end inputs. */
interface E2eCase {
  config: string;
  seg: string;
  perturb: string;
  /** Images of the perturbation folder the official run used (the first N), and its class choices. */
  limit?: number;
  visClasses: readonly ('top' | 'target')[];
}
const E2E_CASES: readonly E2eCase[] = [
  { config: 'S1', seg: 'seg_S1', perturb: 'perturb_S1', visClasses: ['top', 'target'] },
  // G2 has 7 classes: its official run kept the first 7 class folders (16 images) and --vis-class top.
  { config: 'G2', seg: 'seg_G2', perturb: 'perturb_G2', limit: 16, visClasses: ['top'] },
];

function e2e(backend: string): E2eRow[] {
  return E2E_CASES.flatMap((c) => e2eCase(backend, c));
}

function e2eCase(backend: string, c: E2eCase): E2eRow[] {
  const rows: E2eRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'bench-precision-'));
  try {
    const configFile = goldenPath('vit', c.config, 'config.json');
    let weights: string;
    try {
      weights = goldenPath('vit', c.config, 'weights.safetensors');
    } catch {
      // A formula-weight geometry whose weights the golden copy does not keep: rebuilt, as its test does.
      const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as { weights: { seed: number } };
      weights = join(dir, `${c.config}.safetensors`);
      writeFileSync(weights, encodeSafetensors(formulaStateDict(readVitConfig(configFile), cfg.weights.seed)));
    }
    const model = ['--model-config', configFile, '--weights', weights];
    const common = [...model, '--backend', backend, '--method', 'paper', '--quiet'];
    const name = (benchmark: string) => `${benchmark} (${c.config})`;
    // Segmentation, on the S1 run's .mat (the same inputs for every model).
    const segJson = join(dir, 'seg.json');
    bench([
      'seg',
      '--data',
      goldenPath('e2e', 'seg_S1', 'gtsegs_ijcv_e2e_S1.mat'),
      ...common,
      '--out',
      join(dir, 'seg'),
      '--json',
      segJson,
    ]);
    type Seg = Record<string, { pixAcc: number; mIoU: number; mAP: number }>;
    const seg32 = readJson<{ results: Seg }>('e2e', c.seg, 'results.json').results;
    const seg64 = readJson<{ results: Seg }>('e2e', c.seg, 'results_f64.json').results;
    const ours = JSON.parse(readFileSync(segJson, 'utf8')) as {
      methods: Record<string, { pixelAccuracy: number; mIoU: number; mAP: number }>;
    };
    for (const [method, m] of Object.entries(ours.methods)) {
      const ref = GOLDEN_NAME[method]!;
      for (const [what, mine, key] of [
        ['pixel accuracy', m.pixelAccuracy, 'pixAcc'],
        ['mIoU', m.mIoU, 'mIoU'],
        ['mAP', m.mAP, 'mAP'],
      ] as const) {
        const o32 = 100 * seg32[ref]![key];
        const o64 = 100 * seg64[ref]![key];
        rows.push({
          backend,
          benchmark: name('seg'),
          method,
          what,
          official32: o32,
          official64: o64,
          bench: mine,
          excess: Math.abs(mine - o64) - Math.abs(o32 - o64),
        });
      }
    }
    // Perturbation (visualize, then perturb on our own files), every class choice of the official run, both settings.
    type Auc = Record<string, Record<string, Record<string, number>>>;
    const auc32 = readJson<{ auc_table: Auc }>('e2e', c.perturb, 'results.json').auc_table;
    const auc64 = readJson<{ auc_table: Auc }>('e2e', c.perturb, 'results_f64.json').auc_table;
    // The S1 table says neg/pos, the G2 table negative/positive.
    const aucOf = (t: Auc, ref: string, vis: string, setting: 'negative' | 'positive') =>
      t[ref]![vis]![setting] ?? t[ref]![vis]![setting.slice(0, 3)]!;
    for (const vis of c.visClasses) {
      const visDir = join(dir, `vis-${vis}`);
      bench([
        'visualize',
        '--data',
        goldenPath('e2e', 'perturb_S1', 'imagenet_val'),
        ...common,
        ...(c.limit ? ['--limit', String(c.limit)] : []),
        '--vis-class',
        vis,
        '--out',
        visDir,
      ]);
      const pJson = join(dir, `perturb-${vis}.json`);
      bench([
        'perturb',
        '--vis-dir',
        visDir,
        ...model,
        '--backend',
        backend,
        '--quiet',
        '--out',
        join(dir, `pert-${vis}`),
        '--json',
        pJson,
      ]);
      const got = JSON.parse(readFileSync(pJson, 'utf8')) as Record<
        string,
        Record<string, Record<string, { auc: number }>>
      >;
      for (const [method, m] of Object.entries(got)) {
        const ref = GOLDEN_NAME[method]!;
        if (!auc32[ref]) continue; // (the G2 run leaves out 'lrp', the script's alias of transformer attribution)
        for (const setting of ['negative', 'positive'] as const) {
          const mine = m[vis]![setting]!.auc;
          const o32 = aucOf(auc32, ref, vis, setting);
          const o64 = aucOf(auc64, ref, vis, setting);
          rows.push({
            backend,
            benchmark: name('perturb'),
            method,
            what: `AUC ${vis} ${setting}`,
            official32: o32,
            official64: o64,
            bench: mine,
            excess: Math.abs(mine - o64) - Math.abs(o32 - o64),
          });
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (args.child) {
  const info = await initBackend(args.child as BackendChoice);
  const level = await mapLevel(args.child);
  const report: ChildReport = {
    backend: info.name,
    maps: [...level.rows, ...(await bertMapLevel(args.child))],
    missing: level.missing,
    e2e: args['skip-e2e'] ? [] : e2e(args.child),
  };
  writeFileSync(args['child-out']!, JSON.stringify(report));
  process.exit(0);
}

const reports: ChildReport[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'bench-precision-'));
for (const backend of args.backend) {
  process.stderr.write(`precision: measuring on ${backend} …\n`);
  const out = join(tmp, `${backend}.json`);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      backend,
      '--child-out',
      out,
      ...(args['skip-e2e'] ? ['--skip-e2e'] : []),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] },
  );
  if (r.status !== 0) {
    process.stderr.write(`precision: error: backend ${backend} failed:\n${r.stderr}`);
    process.exit(1);
  }
  const report = JSON.parse(readFileSync(out, 'utf8')) as ChildReport;
  // JSON has no ∞: recompute the ratios.
  for (const r of report.maps) r.ratio = ratioOf(r.dBench, r.dOfficial);
  reports.push(report);
}
rmSync(tmp, { recursive: true, force: true });
// The JSON first, so that a report is kept whatever happens to the tables.
const forward = forwardPrecision();
if (args.json) {
  writeFileSync(
    args.json,
    `${JSON.stringify({ date: new Date().toISOString(), forward, machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version }, reports }, null, 2)}\n`,
  );
  process.stderr.write(`precision: wrote ${args.json}\n`);
}

const e = (x: number) => x.toExponential(2);
console.log(`Forward pass: ${describeForward()} (--forward ${forward}; set it with BENCH_FORWARD)\n`);
console.log('## Map level: max|map − float64| / max|float64| (raw maps)\n');
console.log('| backend | case | class | method | bench | official float32 | ratio |');
console.log('|---|---|---|---|---|---|---|');
for (const r of reports.flatMap((x) => x.maps)) {
  console.log(
    `| ${r.backend} | ${r.config}/${r.case} | ${r.class} | ${r.method} | ${e(r.dBench)} | ${e(r.dOfficial)} | ${fmtRatio(r.ratio)} |`,
  );
}
const missing = [...new Set(reports.flatMap((x) => x.missing))];
if (missing.length)
  console.log(
    `\nNot in this golden copy (the repository's copy keeps only part of the geometries' full-LRP maps; BENCH_GOLDEN=<the full folder> measures them): ${missing.join(', ')}`,
  );
console.log('\nWorst ratio per backend and method:\n');
console.log(`| method | ${reports.map((x) => x.backend).join(' | ')} |`);
console.log(`|---|${reports.map(() => '---').join('|')}|`);
const labels = [...new Set(reports.flatMap((x) => x.maps.map((r) => r.method)))];
for (const m of labels) {
  const worst = reports.map((x) => Math.max(...x.maps.filter((r) => r.method === m).map((r) => r.ratio)));
  console.log(`| ${m} | ${worst.map(fmtRatio).join(' | ')} |`);
}
const configs = [...new Set(reports.flatMap((x) => x.maps.map((r) => r.config)))];
if (configs.length > 1) {
  const methods = labels;
  console.log('\nWorst ratio per config, backend and method (over cases and classes):\n');
  console.log(`| config | backend | ${methods.join(' | ')} |`);
  console.log(`|---|---|${methods.map(() => '---').join('|')}|`);
  for (const c of configs)
    for (const x of reports) {
      const worst = methods.map((m) => {
        const rs = x.maps.filter((r) => r.config === c && r.method === m);
        if (rs.length === 0) return '–';
        return fmtRatio(Math.max(...rs.map((r) => r.ratio)));
      });
      console.log(`| ${c} | ${x.backend} | ${worst.join(' | ')} |`);
    }
}
const e2eRows = reports.flatMap((x) => x.e2e);
if (e2eRows.length) {
  console.log('\n## End to end: distance to the official float64 run (points)\n');
  console.log(
    '✗: further from float64 than the official float32 number and by more than 0.05 points (the bar of issue 15).\n',
  );
  console.log(
    '| backend | benchmark | method | what | official float32 | official float64 | bench | |bench − f64| | |f32 − f64| |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of e2eRows) {
    const f = (x: number) => x.toFixed(4);
    console.log(
      `| ${r.backend} | ${r.benchmark} | ${r.method} | ${r.what} | ${f(r.official32)} | ${f(r.official64)} | ${f(r.bench)} | ${f(Math.abs(r.bench - r.official64))} | ${f(Math.abs(r.official32 - r.official64))}${failsBar(r) ? ' ✗' : ''} |`,
    );
  }
  const failing = e2eRows.filter(failsBar).length;
  console.log(`\n${failing} of ${e2eRows.length} end-to-end numbers miss the bar.`);
}
