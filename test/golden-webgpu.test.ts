import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTestFile } from './helpers/child-test.js';
import { webgpuSkip } from './helpers/webgpu.js';

/**
 * The BERT golden (tiny_a: every registry method and class choice, in process and through bench explain) and the
 * end-to-end segmentation golden (seg_S1) on the webgpu backend, with the tolerances they hold the other backends
 * to: each file runs in a child test runner with BENCH_BACKEND=webgpu, which its model and every bench command take
 * as their backend. (The ViT golden suite runs on webgpu in vit-golden-webgpu.test.ts.)
 */
const skip = await webgpuSkip();

for (const file of ['bert-methods.test.ts', 'seg-e2e.test.ts']) {
  test(`${file} on webgpu`, { skip, timeout: 900_000 }, () => {
    const { code, out } = runTestFile(file, { BENCH_BACKEND: 'webgpu' }, 900_000);
    assert.equal(code, 0, out.slice(-6000));
    assert.match(out, /^# pass [1-9]\d*$/m);
    assert.match(out, /^# fail 0$/m);
    assert.match(out, /^# skipped 0$/m);
  });
}
