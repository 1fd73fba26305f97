import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { SOAK_SAMPLE_PREFIX, SoakSampler, soakEvery } from '../src/util/soak-sample.js';

const ROOT = resolve(import.meta.dirname, '..');

interface Flat {
  from: number;
  to: number;
  start: number | null;
  end: number | null;
  endGrowthPercent: number | null;
}

interface SoakReport {
  options: { segImages: number; valImages: number; warmup: number };
  commands: Record<
    string,
    {
      imagesSeen: number;
      itemsSeen: number;
      summaryCounts: Record<string, number>;
      countsMatch: boolean;
      rssMiB: Flat | null;
      peakRssMiB: Flat | null;
      heapMiB: Flat | null;
      openFds: Flat | null;
      imagesPerSecond: { mean: number } | null;
    }
  >;
  samples: {
    command: string;
    images: number;
    rssMiB: number;
    peakRssMiB: number;
    heapMiB: number | null;
    openFds: number | null;
    imagesPerSecond: number | null;
  }[];
}

test('BENCH_SOAK_SAMPLE: a sample at the start, at each multiple passed, and at the end', () => {
  assert.equal(soakEvery({}), undefined);
  assert.equal(soakEvery({ BENCH_SOAK_SAMPLE: '100' }), 100);
  assert.throws(() => soakEvery({ BENCH_SOAK_SAMPLE: '0' }), /BENCH_SOAK_SAMPLE must be a positive integer, got '0'/);
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => {
    lines.push(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    const s = new SoakSampler('x', 50, 10, 0);
    for (const v of [4, 8, 12, 16, 20, 33, 50]) s.update(v);
    s.stop();
  } finally {
    process.stderr.write = write;
  }
  const samples = lines
    .map((l) => l.trim())
    .filter((l) => l.startsWith(SOAK_SAMPLE_PREFIX))
    .map(
      (l) =>
        JSON.parse(l.slice(SOAK_SAMPLE_PREFIX.length)) as {
          images: number;
          final: boolean;
          rssBytes: number;
          peakRssBytes: number;
        },
    );
  assert.deepEqual(
    samples.map((s) => [s.images, s.final]),
    [
      [0, false],
      [12, false],
      [20, false],
      [33, false],
      [50, false],
      [50, true],
    ],
  );
  assert.ok(samples.every((s) => s.rssBytes > 0));
});

// The CI-sized soak: 200 images per data set, transformer attribution only, the negative perturbation test only
// (npm run soak -- --quick). Perturb is the slow command (≈ 3–4 images per test per second on the 2-core CI
// machine, against ≈ 10 images/s for seg and visualize); 300 images with both perturbation tests took over four
// minutes there. Measured on that machine with a long soak and two other jobs running: the quick run 1 min 54 s
// (seg 19 s, visualize 19 s, perturb 55 s, the rest data and start-up).
// Flatness is judged from the first sample at or after image 100 (the warm-up) to the last, as issue 13 asks:
// ≤ 5 % growth of RSS and of the wasm heap.
let report: SoakReport | undefined;
let runError: string | undefined;

before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-soak-'));
  try {
    const json = join(dir, 'soak.json');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/soak.ts', '--quick', '--work', dir, '--out', join(dir, 'out.json'), '--json', json],
      { cwd: ROOT, encoding: 'utf8', timeout: 600_000 },
    );
    const missing = ['out.json', 'out.svg', 'out.png'].filter((f) => !existsSync(join(dir, f)));
    if (r.status !== 0 || missing.length) runError = `exit ${r.status}; missing ${missing.join(', ')}\n${r.stderr}`;
    else report = JSON.parse(readFileSync(json, 'utf8')) as SoakReport;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function soakReport(): SoakReport {
  assert.ok(report, runError);
  return report;
}

test('npm run soak -- --quick: summaries count every image; samples every 100; no descriptor leak', () => {
  const rep = soakReport();
  assert.deepEqual(Object.keys(rep.commands), ['seg', 'visualize', 'perturb']);
  for (const s of rep.samples) {
    for (const k of ['command', 'images', 'rssMiB', 'peakRssMiB', 'heapMiB', 'openFds', 'imagesPerSecond'])
      assert.ok(k in s, `sample field ${k}`);
  }
  for (const [command, c] of Object.entries(rep.commands)) {
    const images = command === 'seg' ? rep.options.segImages : rep.options.valImages;
    assert.equal(c.imagesSeen, images, `${command}: images seen`);
    assert.ok(c.countsMatch, `${command}: ${JSON.stringify(c.summaryCounts)}`);
    for (const [k, n] of Object.entries(c.summaryCounts)) assert.equal(n, images, `${command}: ${k}`);
    const samples = rep.samples.filter((s) => s.command === command);
    assert.equal(samples.at(-1)!.images, c.itemsSeen);
    // Sampled at the start, about every 100 items and at the end.
    assert.ok(samples.length >= 3, `${command}: ${samples.length} samples`);
    // The count at the end is the count after warm-up (give or take one transient descriptor).
    assert.ok(c.openFds && c.openFds.end! <= c.openFds.start! + 1, `${command}: fds ${JSON.stringify(c.openFds)}`);
    assert.ok(c.imagesPerSecond && c.imagesPerSecond.mean > 0);
    // The high-water mark is one: never below the RSS of the same sample, never falling.
    for (const [i, s] of samples.entries()) {
      assert.ok(s.peakRssMiB >= s.rssMiB, `${command} ${s.images}: peak ${s.peakRssMiB} < RSS ${s.rssMiB}`);
      if (i > 0) assert.ok(s.peakRssMiB >= samples[i - 1]!.peakRssMiB, `${command} ${s.images}: peak RSS fell`);
    }
  }
});

function assertFlat(command: string): void {
  const rep = soakReport();
  const c = rep.commands[command]!;
  for (const [what, f] of [
    ['peak RSS', c.peakRssMiB],
    ['wasm heap', c.heapMiB],
  ] as const) {
    assert.ok(f && f.endGrowthPercent !== null, `${command}: no ${what} figure`);
    assert.ok(f.from >= rep.options.warmup && f.to === c.itemsSeen, `${command}: ${what} from ${f.from} to ${f.to}`);
    assert.ok(
      f.endGrowthPercent <= 5,
      `${command}: ${what} grew ${f.endGrowthPercent} % from item ${f.from} to ${f.to} (${f.start} → ${f.end} MiB)`,
    );
  }
}

// The 5 % bound: this soak found (2026-12-02, results/soak/README.md) the wasm heap growing ≈ 0.25–0.55 MiB per
// image with transformer attribution, from heap fragmentation; rounding tensor buffers to size classes
// (src/engine/platform-fixes.ts) fixed it. Measured after the fix: see results/soak/README.md.
// RSS is judged by its high-water mark (peak RSS), as the wasm heap is. RSS at a sample depends on the moment: in
// ten quick runs (2026-12-03, a full garbage collection before each sample) perturb's moved between ≈ 240 and
// 350 MiB from one sample to the next (≈ 85 MiB of native memory while a batch is in flight), so its growth from
// item 100 to 200 ranged from −20 % to +2.7 % by chance; before the collection, visualize's passed 5 % once
// (+5.2 %, a CI run) with the wasm heap flat. The peak settles within the first batches: from item 100 to 200 it
// grew 0.0 % for perturb, 0.7–1.2 % for seg and 0.1–0.7 % for visualize in four of those runs. For seg and
// visualize the peak is the RSS of the moment (their RSS rises smoothly), so a leak shows as it grows; perturb's
// first batches set a peak ≈ 25 MiB above its later ones, which a leak fills before it shows. A leak in the wasm
// heap, the kind this soak found (≈ 0.25 MiB per image), shows in the heap's own figure from the first image.
test('npm run soak -- --quick: seg keeps peak RSS and the wasm heap flat after warm-up (≤ 5 %)', () =>
  assertFlat('seg'));
test('npm run soak -- --quick: visualize keeps peak RSS and the wasm heap flat after warm-up (≤ 5 %)', () =>
  assertFlat('visualize'));
test('npm run soak -- --quick: perturb keeps peak RSS and the wasm heap flat after warm-up (≤ 5 %)', () =>
  assertFlat('perturb'));

test('npm run soak: bad input gets one clear line', () => {
  for (const [args, re] of [
    [['--images', '0'], /^soak: error: --images must be a positive integer, got 0$/],
    [
      ['--commands', 'seg,explain'],
      /^soak: error: --commands: unknown 'explain' \(choose from seg, visualize, perturb\)$/,
    ],
    [['--commands', 'perturb'], /^soak: error: --commands: perturb runs on the maps visualize writes; add visualize$/],
    [['--perturb-tests', 'all'], /^soak: error: Invalid values: .*perturb-tests/],
  ] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/soak.ts', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
