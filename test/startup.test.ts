import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { BIN } from './helpers/cli.js';

/**
 * Start-up (issue 12): the help and version answers load none of the heavy modules (a command loads its
 * engine in its handler), and the bin runs the compiled dist/ when it is fresh, the sources through tsx
 * otherwise. Checked by recording every module the program resolves (test/helpers/record-imports.mjs),
 * not by timing.
 */
const ROOT = resolve(import.meta.dirname, '..');
const RECORDER = join(import.meta.dirname, 'helpers', 'record-imports.mjs');
// TensorFlow.js is loaded with require() by src/engine/tf.ts (and the wasm backend by backend.ts), which an
// ES resolve hook does not see: the modules that load them stand for them.
const HEAVY =
  /\/node_modules\/(@tensorflow\/|h5wasm\/|sharp\/|vega|cli-progress\/|csv-stringify\/)|\/dist\/engine\/(tf|backend)\.js$/;
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs `node bin args` with the import recorder; returns the streams and the resolved module URLs. */
function benchRecorded(args: string[], bin = BIN) {
  const file = join(mkdtempSync(join(tmpdir(), 'bench-imports-')), 'imports.txt');
  const r = spawnSync(process.execPath, ['--import', RECORDER, bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_RECORD_IMPORTS: file },
    timeout: 120_000,
  });
  let urls: string[] = [];
  try {
    urls = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {}
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, urls };
}

const COMMANDS = ['explain', 'seg', 'visualize', 'perturb', 'eraser', 'merge', 'regress', 'report'];

describe('start-up', () => {
  for (const args of [['--help'], ['--version'], ...COMMANDS.map((c) => [c, '--help'])]) {
    test(`bench ${args.join(' ')} loads no TensorFlow.js, h5wasm, sharp, vega`, () => {
      const r = benchRecorded(args);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /bench: note:/, "dist/ is missing or stale: run 'npm run build' first");
      assert.ok(
        r.urls.some((u) => u.endsWith('/dist/cli.js')),
        'the bin runs dist/cli.js',
      );
      assert.deepEqual(
        r.urls.filter((u) => HEAVY.test(u)),
        [],
      );
      if (args[0] === '--version') assert.equal(r.stdout, `${VERSION}\n`);
      else assert.match(r.stdout, /Options:/);
    });
  }

  test('the recorder sees the engine when a command runs (so the checks above can fail)', () => {
    const r = benchRecorded(['explain', '--method', 'rollout']);
    assert.equal(r.code, 0, r.stderr);
    // TensorFlow.js itself is loaded with require() (src/engine/tf.ts), which the ES resolve hook does not
    // see; the module that loads it is seen, and sharp is imported.
    assert.ok(r.urls.some((u) => u.endsWith('/dist/engine/tf.js')));
    assert.ok(r.urls.some((u) => HEAVY.test(u)));
  });

  /** A copy of the project's entry points in a temp folder: bin/ copied, the rest linked or copied. */
  function project(opts: { dist: boolean }): string {
    const dir = mkdtempSync(join(tmpdir(), 'bench-bin-'));
    mkdirSync(join(dir, 'bin'));
    cpSync(BIN, join(dir, 'bin', 'bench.js'));
    for (const f of ['node_modules', 'package.json', 'configs', 'embedded']) symlinkSync(join(ROOT, f), join(dir, f));
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
    if (opts.dist) symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
    return dir;
  }

  test('without dist/, the bin runs the sources through tsx and says so in one line', () => {
    const dir = project({ dist: false });
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'bench.js'), '--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${VERSION}\n`);
    assert.equal(
      r.stderr,
      "bench: note: dist/ is missing; running the TypeScript sources through tsx (run 'npm run build')\n",
    );
  });

  test('with a source file newer than dist/, the bin runs the sources, not the stale build', () => {
    const dir = project({ dist: true });
    const future = new Date(Date.now() + 3600_000);
    utimesSync(join(dir, 'src', 'cli.ts'), future, future);
    const r = benchRecorded(['--version'], join(dir, 'bin', 'bench.js'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^bench: note: src\/cli\.ts is newer than dist\/; running the TypeScript sources/);
    assert.ok(r.urls.some((u) => u.endsWith(`${dir}/src/cli.ts`)));
    assert.ok(!r.urls.some((u) => u.endsWith('/dist/cli.js')));
  });
});
