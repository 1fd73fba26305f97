import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readExplanations } from '../../src/formats/expl-hdf5.js';

/** Comparing the outputs of two benchmark runs (resumed, sharded, or on other worker counts). */

/** Every file under a folder, relative, sorted. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** A summary without its wall-clock timings (the only thing that legitimately differs between runs). */
export function withoutTimings(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'), (k, v) =>
    k === 'secondsPerImage' || k === 'seconds' || k === 'sharedSeconds' ? undefined : v,
  );
}

/**
 * Two explanation files hold the same rows: indices, maps, images and targets. (The files themselves
 * differ in the modification time HDF5 stamps on each dataset.)
 */
export async function assertSameExplanationRows(expectedFile: string, actualFile: string): Promise<void> {
  const a = await readExplanations(expectedFile);
  const b = await readExplanations(actualFile);
  try {
    assert.deepEqual(b.indices, a.indices, actualFile);
    const [ra, rb] = [a.readRows(0, a.rows), b.readRows(0, b.rows)];
    assert.deepEqual(rb.vis, ra.vis, actualFile);
    assert.deepEqual(rb.image, ra.image, actualFile);
    assert.deepEqual(rb.target, ra.target, actualFile);
  } finally {
    a.close();
    b.close();
  }
}
