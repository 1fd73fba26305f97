import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { goldenPath } from './helpers/golden.js';

/**
 * A golden test never skips and never passes on nothing: a golden folder that is missing, or that holds a
 * config with no cases, makes the golden test files fail. Each file runs in its own test runner, with
 * BENCH_GOLDEN pointing at the broken folder.
 */
function runTestFile(file: string, golden: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', resolve(import.meta.dirname, file)], {
    encoding: 'utf8',
    // Without NODE_TEST_CONTEXT, which would make the child runner defer to this one and run nothing.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, BENCH_GOLDEN: golden },
    timeout: 300_000,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('a missing or empty golden folder fails the golden tests', () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-golden-'));

  test('missing folder: the ViT golden suite and the image decode goldens fail, naming the path', () => {
    const missing = join(root, 'nowhere');
    for (const file of ['vit-golden.test.ts', 'image.test.ts', 'formats.test.ts']) {
      const r = runTestFile(file, missing);
      assert.notEqual(r.code, 0, `${file} passed without golden data:\n${r.out}`);
      assert.match(r.out, /golden file missing: .*nowhere/, file);
      assert.doesNotMatch(r.out, /# skipped [1-9]/, file);
    }
  });

  test('a config folder with weights but no case files fails instead of registering zero tests', () => {
    const empty = join(root, 'no-cases');
    mkdirSync(join(empty, 'vit', 'S1'), { recursive: true });
    for (const f of ['config.json', 'weights.safetensors'])
      copyFileSync(goldenPath('vit', 'S1', f), join(empty, 'vit', 'S1', f));
    const r = runTestFile('vit-golden.test.ts', empty);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /no golden cases \(case-\*\.json\) in .*no-cases/);
  });
});
