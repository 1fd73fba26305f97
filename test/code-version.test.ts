import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { codeVersion, codeVersionOf } from '../src/util/code-version.js';

test('the code version changes with any module file and with the package version, and with nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-code-version-'));
  const root = join(dir, 'src');
  mkdirSync(join(root, 'sub'), { recursive: true });
  const pkg = join(dir, 'package.json');
  writeFileSync(pkg, JSON.stringify({ version: '1.2.3' }));
  writeFileSync(join(root, 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(root, 'sub', 'b.js'), 'export const b = 2;\n');
  const v0 = codeVersionOf(root, pkg);
  assert.equal(v0.version, '1.2.3');
  assert.match(v0.hash, /^[0-9a-f]{64}$/);

  writeFileSync(join(root, 'notes.md'), 'not code');
  writeFileSync(join(root, 'a.js.map'), '{}');
  writeFileSync(join(root, 'a.d.ts'), 'export declare const a: number;\n');
  assert.deepEqual(codeVersionOf(root, pkg), v0);

  writeFileSync(join(root, 'sub', 'b.js'), 'export const b = 3;\n');
  const v1 = codeVersionOf(root, pkg);
  assert.notEqual(v1.hash, v0.hash);
  writeFileSync(join(root, 'sub', 'c.ts'), '');
  assert.notEqual(codeVersionOf(root, pkg).hash, v1.hash);

  writeFileSync(pkg, JSON.stringify({ version: '1.2.4' }));
  assert.equal(codeVersionOf(root, pkg).version, '1.2.4');
});

test("this checkout's code version is stable within a process", () => {
  assert.deepEqual(codeVersion(), codeVersion());
});
