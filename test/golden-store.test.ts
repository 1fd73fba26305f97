import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { encodeSafetensors, readSafetensors } from '../src/formats/safetensors.js';
import { readManifest, STORE, sha256, unpackGolden } from './helpers/golden-store.js';

/** A small safetensors file (F32 tensors, in the given order) with header metadata. */
const safetensors = (tensors: [string, number[]][]): Buffer =>
  Buffer.from(
    encodeSafetensors(new Map(tensors.map(([n, v]) => [n, { shape: [v.length], data: Float32Array.from(v) }])), {
      made_by: 'test',
    }),
  );

const SYNC = resolve(import.meta.dirname, '../scripts/golden-sync.ts');
const sync = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', SYNC, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('the in-repository golden copy', () => {
  test('the copy in test/golden unpacks, and every file matches its SHA-256', () => {
    const m = readManifest();
    const dir = unpackGolden();
    assert.ok(m.files.length > 20, `${m.files.length} files`);
    for (const f of m.files) assert.equal(sha256(readFileSync(join(dir, f.path))), f.sha256, f.path);
    // The copy holds only what a trace named; no reference to a document that is not in the repository.
    for (const f of m.files.filter((x) => x.store === 'files'))
      assert.doesNotMatch(readFileSync(join(dir, f.path), 'utf8'), /ALGORITHMS\.md/, f.path);
  });

  test('a damaged copy fails, naming the file', () => {
    const root = mkdtempSync(join(tmpdir(), 'bench-golden-store-'));
    try {
      const copy = join(root, 'store');
      cpSync(STORE, copy, { recursive: true, filter: (p) => !p.includes('.cache') });
      const m = readManifest(copy);
      const text = m.files.find((f) => f.store === 'files')!;
      writeFileSync(join(copy, 'files', text.path), `${readFileSync(join(copy, 'files', text.path), 'utf8')} `);
      assert.throws(() => unpackGolden(copy), new RegExp(`golden file ${text.path} .*does not match its SHA-256`));

      cpSync(join(STORE, 'files'), join(copy, 'files'), { recursive: true });
      const [name] = Object.keys(m.bundles);
      rmSync(join(copy, 'bundles', `${name}.br`));
      assert.throws(() => unpackGolden(copy), new RegExp(`golden file missing: .*bundles/${name}\\.br`));

      rmSync(join(copy, 'manifest.json'));
      assert.throws(() => unpackGolden(copy), /golden file missing: .*manifest\.json/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('golden:sync keeps what a trace names, prunes safetensors to the tensors read, and reports changes', () => {
    const root = mkdtempSync(join(tmpdir(), 'bench-golden-sync-'));
    try {
      const src = join(root, 'src');
      mkdirSync(join(src, 'a', 'b', 'deep'), { recursive: true });
      writeFileSync(join(src, 'README.md'), '# top\n');
      writeFileSync(
        join(src, 'a', 'b', 'x.safetensors'),
        safetensors([
          ['one', [1, 2]],
          ['two', [3]],
          ['three', [4, 5, 6]],
        ]),
      );
      writeFileSync(join(src, 'a', 'b', 'deep', 'w.bin'), Buffer.from([1, 2, 3, 4]));
      writeFileSync(join(src, 'a', 'b', 'unused.bin'), Buffer.alloc(1000, 7));
      writeFileSync(join(src, 'a', 'b', 'c.json'), '{"k":1}\n');
      const traceFile = join(root, 'trace.txt');
      writeFileSync(
        traceFile,
        [
          'a/',
          'a/b/x.safetensors#',
          'a/b/x.safetensors#three',
          'a/b/x.safetensors#one',
          'a/b/deep',
          'a/b/c.json',
          '',
        ].join('\n'),
      );
      const store = join(root, 'store');

      const r = sync('--from', src, '--trace', traceFile, '--store', store);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /added {4}a\/b\/x\.safetensors \(\d+ B; pruned to the 2 of 3 tensors the tests read\)/);
      assert.match(r.stdout, /4 files kept of 5 \(1 not read by any test\)/);
      const m = readManifest(store);
      assert.deepEqual(
        m.files.map((f) => f.path),
        ['README.md', 'a/b/c.json', 'a/b/deep/w.bin', 'a/b/x.safetensors'],
      );
      const dir = unpackGolden(store);
      const sd = readSafetensors(join(dir, 'a', 'b', 'x.safetensors')).tensors;
      assert.deepEqual([...sd.keys()], ['one', 'three']);
      assert.deepEqual([...sd.get('one')!.data], [1, 2]);
      assert.deepEqual([...sd.get('three')!.data], [4, 5, 6]);
      assert.deepEqual([...readFileSync(join(dir, 'a', 'b', 'deep', 'w.bin'))], [1, 2, 3, 4]);
      assert.equal(m.files.find((f) => f.path === 'a/b/x.safetensors')!.tensors!.join(), 'one,three');

      // A refresh without a trace keeps the same selection and reports the changed contents.
      writeFileSync(join(src, 'a', 'b', 'deep', 'w.bin'), Buffer.from([9, 9]));
      const again = sync('--from', src, '--store', store);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /changed {2}a\/b\/deep\/w\.bin \(4 → 2 B\)/);
      assert.deepEqual([...readFileSync(join(unpackGolden(store), 'a', 'b', 'deep', 'w.bin'))], [9, 9]);

      // A trace naming a tensor the file does not hold is refused.
      writeFileSync(traceFile, 'a/b/x.safetensors#four\n');
      const bad = sync('--from', src, '--trace', traceFile, '--store', store, '--dry-run');
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /a\/b\/x\.safetensors: the trace names tensor 'four', which it does not hold/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
