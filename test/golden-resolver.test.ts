import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runTestFile as runChild } from './helpers/child-test.js';
import { goldenPath } from './helpers/golden.js';

/**
 * A golden test never skips and never passes on nothing: a golden folder that is missing, or that holds a
 * config with no cases, makes the golden test files fail. Each file runs in its own test runner, with
 * BENCH_GOLDEN pointing at the broken folder.
 */
const runTestFile = (file: string, golden: string) => runChild(file, { BENCH_GOLDEN: golden });

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
