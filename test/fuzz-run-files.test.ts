import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type EraserRunOptions, runEraser } from '../src/benchmarks/eraser.js';
import { runSegmentation, type SegRunOptions } from '../src/benchmarks/segmentation.js';
import { loadEraserData, MOVIES_CLASSES } from '../src/datasets/eraser.js';
import { EMBEDDED } from '../src/embedded.js';
import { initBackend } from '../src/engine/backend.js';
import { resolveMethods } from '../src/methods/registry.js';
import { loadBert, loadVit } from '../src/models/load.js';
import { WordPieceTokenizer } from '../src/text/wordpiece.js';
import { Rng } from '../src/util/random.js';
import { type FuzzTarget, mutate } from './helpers/fuzz.js';
import { filesUnder } from './helpers/run-outputs.js';

/**
 * Fuzzing the run files (issue 16 item 5): an unfinished run's state.json, run.json, per_image.csv (seg) or
 * documents.jsonl (eraser) is mutated (the binary fuzzer's bit flips, overwrites, truncations, insertions,
 * deletions, lying integers, copied chunks), then resumed. Each must be recovered (the run ends with the summary
 * and rows of an uninterrupted run) or refused with one line naming the damaged file: never a wrong summary.
 * BENCH_FUZZ_RUN_FILES=N sets the mutations per command (default 30).
 */
const ITERATIONS = Number(process.env.BENCH_FUZZ_RUN_FILES ?? 30);
const PLAIN: FuzzTarget = { ext: '', seeds: async () => [], read: () => null, check: () => null };

/** A summary without timings; the row-F1 quirk metric rounded (a rebuilt seg checkpoint sums it from means). */
function comparable(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v), (k, x) =>
    k === 'seconds' || k === 'secondsPerImage' || k === 'sharedSeconds'
      ? undefined
      : k === 'rowF1'
        ? Number((x as number).toFixed(9))
        : x,
  );
}

interface Outcome {
  recovered: number;
  refused: number;
  byFile: Record<string, { recovered: number; refused: number }>;
}

/**
 * Mutates one of `files` of a copy of `seed`, resumes it with `resume(dir)`, and checks the outcome; returns the
 * tallies. `same(dir)` asserts that a recovered run's outputs equal the uninterrupted run's.
 */
async function fuzzRunFiles(
  seed: string,
  files: string[],
  resume: (dir: string) => Promise<unknown>,
  expected: unknown,
  same: (dir: string) => void,
  rng: Rng,
): Promise<Outcome> {
  const tally: Outcome = { recovered: 0, refused: 0, byFile: {} };
  const work = mkdtempSync(join(tmpdir(), 'bench-fuzz-run-'));
  for (let it = 0; it < ITERATIONS; it++) {
    const dir = join(work, String(it));
    cpSync(seed, dir, { recursive: true });
    const name = files[it % files.length]!;
    const file = join(dir, name);
    const { bytes, desc } = mutate(rng, readFileSync(file), PLAIN);
    writeFileSync(file, bytes);
    const where = `iteration ${it}: ${name}: ${desc}`;
    const t = (tally.byFile[name] ??= { recovered: 0, refused: 0 });
    let summary: unknown;
    try {
      summary = await resume(dir);
    } catch (e) {
      const msg = (e as Error).message;
      assert.ok(!msg.includes('\n'), `${where}: a multi-line error: ${msg}`);
      assert.ok(msg.includes(name), `${where}: the error does not name ${name}: ${msg}`);
      tally.refused++;
      t.refused++;
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    assert.deepEqual(comparable(summary), expected, `${where}: a wrong summary`);
    same(dir);
    tally.recovered++;
    t.recovered++;
    rmSync(dir, { recursive: true, force: true });
  }
  return tally;
}

describe('fuzzing the run files: recovered or one clear error, never a wrong summary', () => {
  before(async () => {
    await initBackend('cpu');
  });

  test('bench seg: state.json, run.json, per_image.csv', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'bench-fuzz-seg-'));
    const model = loadVit({ configFile: EMBEDDED.model.config, weightsFile: EMBEDDED.model.weights, norm: 'config' });
    const base: Omit<SegRunOptions, 'outDir'> = {
      model,
      dataFile: EMBEDDED.segData,
      methods: resolveMethods(['rollout', 'transformer_attribution']),
      startLayer: 1,
      limit: 6,
      identity: { command: 'seg', fuzz: 1 },
      quiet: true,
      log: () => {},
    };
    const whole = await runSegmentation({ ...base, outDir: join(root, 'whole') });
    const seed = join(root, 'seed');
    await assert.rejects(
      runSegmentation({
        ...base,
        outDir: seed,
        onImageDone: (i) => {
          if (i === 3) throw new Error('interrupted');
        },
      }),
    );
    const csv = readFileSync(join(root, 'whole', 'per_image.csv'));
    const tally = await fuzzRunFiles(
      seed,
      ['state.json', 'run.json', 'per_image.csv'],
      (dir) => runSegmentation({ ...base, outDir: dir, resume: true }),
      comparable(whole),
      (dir) => assert.ok(readFileSync(join(dir, 'per_image.csv')).equals(csv), `${basename(dir)}: per_image.csv`),
      new Rng(20261202),
    );
    t.diagnostic(JSON.stringify(tally));
    // Both outcomes happen (the test is not vacuous): most state.json damage is rebuilt, CSV damage refused.
    assert.ok(tally.recovered > 0 && tally.refused > 0, JSON.stringify(tally));
    assert.ok(tally.byFile['state.json']!.recovered > 0, JSON.stringify(tally));
  });

  test('bench eraser: run.json, documents.jsonl', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'bench-fuzz-eraser-'));
    const dir = EMBEDDED.eraser.model;
    const model = loadBert(join(dir, 'config.json'), join(dir, 'weights.safetensors'));
    const { annotations, documents } = loadEraserData(EMBEDDED.eraser.data, 'test', { classes: MOVIES_CLASSES });
    const base: Omit<EraserRunOptions, 'outDir'> = {
      model,
      tokenizer: WordPieceTokenizer.fromFile(join(dir, 'vocab.txt')),
      annotations,
      documents,
      classes: MOVIES_CLASSES,
      methods: resolveMethods(['rollout', 'transformer_attribution']),
      maxLength: Math.min(512, model.config.max_position_embeddings),
      limit: 6,
      identity: { command: 'eraser', fuzz: 1 },
      quiet: true,
      log: () => {},
    };
    const whole = await runEraser({ ...base, outDir: join(root, 'whole') });
    const seed = join(root, 'seed');
    await assert.rejects(
      runEraser({
        ...base,
        outDir: seed,
        onDocumentDone: (i) => {
          if (i === 3) throw new Error('interrupted');
        },
      }),
    );
    const files = filesUnder(join(root, 'whole'));
    const tally = await fuzzRunFiles(
      seed,
      ['documents.jsonl', 'run.json'],
      (d) => runEraser({ ...base, outDir: d, resume: true }),
      comparable(whole),
      (d) => {
        assert.deepEqual(filesUnder(d), files);
        for (const f of files)
          assert.ok(readFileSync(join(d, f)).equals(readFileSync(join(root, 'whole', f))), `${basename(d)}: ${f}`);
      },
      new Rng(20261203),
    );
    t.diagnostic(JSON.stringify(tally));
    assert.ok(tally.recovered > 0 && tally.byFile['documents.jsonl']!.refused === 0, JSON.stringify(tally));
  });
});
