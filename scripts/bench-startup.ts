/**
 * Start-up benchmark (issue 12): wall time of `bench --help`, `bench seg --help` and `bench --version`, and
 * the time to the first image of `bench seg --limit 1` on the embedded default, for the compiled command
 * line (bin/bench.js → dist/) beside the sources run through tsx (`node --import tsx src/cli.ts`), with
 * their ratio; with --baseline-ref, also for an older commit of the project (the tsx-only bin before dist/).
 *
 *   npm run bench:startup -- [--runs 5] [--json FILE] [--baseline-ref COMMIT]
 *
 * Every time is measured here, from spawn: to the exit for the help and version cases, and to the line
 * that marks the first image for the seg case: `bench: trace: first-image` (BENCH_TRACE_START=1), or the
 * progress bar's first plain line (`seg [`) where the code has no trace (the baseline), whichever comes
 * first. Both are printed just before the first image is computed. The model's loading time comes from
 * the trace (`model-start` to `model-ready`), where there is one. Each case has one untimed warm-up run
 * (file cache), then --runs timed runs; reported: median, min and max. Timings on a shared machine are
 * noisy: the load average before and after is recorded; run it on a quiet machine.
 * Needs a fresh build (`npm run build`): the script stops if bin/bench.js would fall back to tsx.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

const args = await yargs(hideBin(process.argv))
  .option('runs', { type: 'number', default: 5, describe: 'timed runs per case (after one warm-up)' })
  .option('json', { type: 'string', describe: 'write the results to this JSON file' })
  .option('baseline-ref', {
    type: 'string',
    describe: 'also measure this commit (git archive into the temp folder, with this checkout’s node_modules)',
  })
  .check((a) => {
    if (!Number.isInteger(a.runs) || a.runs < 1) throw new Error('--runs must be a positive integer');
    return true;
  })
  .strict()
  .parseAsync();

const ROOT = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'bench-startup-'));

interface Variant {
  label: string;
  /** node arguments before the bench arguments */
  prefix: string[];
  cwd: string;
}

const variants: Variant[] = [
  { label: 'bin (dist)', prefix: [join(ROOT, 'bin', 'bench.js')], cwd: ROOT },
  { label: 'tsx (src)', prefix: ['--import', 'tsx', join(ROOT, 'src', 'cli.ts')], cwd: ROOT },
];
if (args['baseline-ref']) {
  const ref = args['baseline-ref'];
  // Outside the checkout: a second biome.json or tsconfig.json under it would confuse the tools.
  const dir = join(tmpdir(), `bench-startup-baseline-${ref.replace(/[^\w.-]/g, '_')}`);
  if (!existsSync(join(dir, 'bin', 'bench.js'))) {
    mkdirSync(dir, { recursive: true });
    const archive = spawnSync('git', ['-C', ROOT, 'archive', '--format=tar', ref], { maxBuffer: 1 << 30 });
    if (archive.status !== 0) throw new Error(`git archive ${ref}: ${archive.stderr.toString()}`);
    const untar = spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar: ${untar.stderr.toString()}`);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  }
  variants.push({ label: `baseline ${ref} (bin)`, prefix: [join(dir, 'bin', 'bench.js')], cwd: dir });
}

interface Case {
  name: string;
  args: string[];
  /** Measure to this line of stderr instead of to the exit. */
  mark?: RegExp;
}

const cases: Case[] = [
  { name: 'bench --help', args: ['--help'] },
  { name: 'bench seg --help', args: ['seg', '--help'] },
  { name: 'bench --version', args: ['--version'] },
  {
    name: 'bench seg --limit 1: first image',
    args: ['seg', '--limit', '1', '--method', 'all'],
    mark: /^bench: trace: first-image|^seg \[/m,
  },
];

interface Run {
  seconds: number;
  code: number | null;
  /** From the trace, where the code has one: the model's loading time. */
  modelSeconds?: number;
}

function once(v: Variant, c: Case, out: string): Promise<Run> {
  return new Promise((done, fail) => {
    const argv = [...v.prefix, ...c.args, ...(c.mark ? ['--out', out] : [])];
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, {
      cwd: v.cwd,
      env: { ...process.env, BENCH_TRACE_START: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let marked: number | undefined;
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      if (c.mark && marked === undefined && c.mark.test(stderr)) marked = performance.now();
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const end = marked ?? performance.now();
      if (/bench: note: .*running the TypeScript sources through tsx/.test(stderr))
        fail(new Error(`${v.label}: bin/bench.js fell back to tsx; run 'npm run build' first`));
      if (c.mark && marked === undefined) fail(new Error(`${v.label} ${c.name}: no first-image line:\n${stderr}`));
      const ms = (event: string) => Number(new RegExp(`bench: trace: ${event} ([\\d.]+) ms`).exec(stderr)?.[1]);
      const model = ms('model-ready') - ms('model-start');
      done({ seconds: (end - t0) / 1000, code, ...(Number.isFinite(model) ? { modelSeconds: model / 1000 } : {}) });
    });
  });
}

interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
  exitCode: number | null;
  modelSeconds?: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(v: Variant, c: Case): Promise<Stat> {
  const out = (i: number) => join(scratch, `${v.label.replace(/\W+/g, '_')}-${c.args[0]}-${i}`);
  await once(v, c, out(-1)); // warm-up
  const runs: Run[] = [];
  for (let i = 0; i < args.runs; i++) runs.push(await once(v, c, out(i)));
  const secs = runs.map((r) => r.seconds);
  const models = runs.flatMap((r) => (r.modelSeconds === undefined ? [] : [r.modelSeconds]));
  return {
    median: median(secs),
    min: Math.min(...secs),
    max: Math.max(...secs),
    runs: secs,
    exitCode: runs[0]!.code,
    ...(models.length ? { modelSeconds: median(models) } : {}),
  };
}

const loadBefore = loadavg();
console.log(
  `bench:startup — ${args.runs} timed run(s) per case after 1 warm-up; ${cpus().length} CPU(s): ${cpus()[0]?.model ?? '?'}; ` +
    `Node ${process.version}; load average ${loadBefore.map((l) => l.toFixed(2)).join(', ')}`,
);
const results: Record<string, Record<string, Stat>> = {};
for (const c of cases) {
  results[c.name] = {};
  for (const v of variants) {
    const s = await measure(v, c);
    results[c.name]![v.label] = s;
    const model = s.modelSeconds === undefined ? '' : `  (model loading ${s.modelSeconds.toFixed(3)} s)`;
    const code = s.exitCode === 0 ? '' : `  exit ${s.exitCode}`;
    console.log(
      `  ${c.name.padEnd(34)} ${v.label.padEnd(22)} median ${s.median.toFixed(3)}  min ${s.min.toFixed(3)}  max ${s.max.toFixed(3)} s${model}${code}`,
    );
  }
}
const loadAfter = loadavg();
rmSync(scratch, { recursive: true, force: true });

const labels = variants.map((v) => v.label);
console.log(
  `\n| case | ${labels.map((l) => `${l}, median s`).join(' | ')} | ${labels
    .slice(1)
    .map((l) => `${l} / bin`)
    .join(' | ')} |`,
);
console.log(
  `|---|${labels.map(() => '---').join('|')}|${labels
    .slice(1)
    .map(() => '---')
    .join('|')}|`,
);
for (const [name, byVariant] of Object.entries(results)) {
  const base = byVariant[labels[0]!]!.median;
  console.log(
    `| ${name} | ${labels.map((l) => byVariant[l]!.median.toFixed(3)).join(' | ')} | ${labels
      .slice(1)
      .map((l) => `${(byVariant[l]!.median / base).toFixed(1)}×`)
      .join(' | ')} |`,
  );
}
console.log(`\nload average after: ${loadAfter.map((l) => l.toFixed(2)).join(', ')}`);

if (args.json) {
  const out = {
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    loadAverage: { before: loadBefore, after: loadAfter },
    runs: args.runs,
    variants: Object.fromEntries(variants.map((v) => [v.label, ['node', ...v.prefix].join(' ')])),
    results,
  };
  writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${args.json}`);
}
