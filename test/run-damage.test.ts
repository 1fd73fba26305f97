import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bench, benchAsync } from './helpers/cli.js';
import { filesUnder, withoutTimings } from './helpers/run-outputs.js';

/**
 * Damaged run files (issue 16 item 2): a cut or garbled checkpoint is rebuilt from the rows on disk where they
 * allow it, with one warning naming the file, and the run ends equal to an uninterrupted one; where they do not,
 * one error line names the file and what is wrong.
 */

/** The lines a user reads: errors and warnings (not the launcher's note or the start-up lines). */
function reported(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^bench: error:|^warning:/.test(l));
}

/** A summary without timings, and with the row-F1 quirk metric rounded (a rebuilt run sums it from per-image means). */
function segSummary(file: string): unknown {
  const s = withoutTimings(file) as { methods: Record<string, { rowF1: number }> };
  for (const m of Object.values(s.methods)) m.rowF1 = Number(m.rowF1.toFixed(9));
  return s;
}

const SEG = ['seg', '--limit', '12', '--method', 'rollout,transformer_attribution', '--quiet'];

describe('damaged run files', () => {
  test('bench seg: state.json cut to 100 bytes and per_image.csv cut mid-row → rebuilt from the rows with one warning; the run ends equal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-damage-seg-'));
    const whole = join(dir, 'whole');
    const r0 = bench([...SEG, '--out', whole]);
    assert.equal(r0.code, 0, r0.stderr);
    // An unfinished run: the finished one's rows cut within image 7, its summaries gone, its state.json cut.
    const out = join(dir, 'cut');
    cpSync(whole, out, { recursive: true });
    rmSync(join(out, 'summary.json'));
    rmSync(join(out, 'summary.md'));
    const csv = readFileSync(join(out, 'per_image.csv'), 'utf8');
    const cutAt = csv.indexOf('\n7,') + 12;
    truncateSync(join(out, 'per_image.csv'), Buffer.byteLength(csv.slice(0, cutAt)));
    truncateSync(join(out, 'state.json'), 100);
    const r = bench([...SEG, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    const lines = reported(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^warning: .*cut\/state\.json: damaged: not complete JSON \(.*\); rebuilt from the 7 complete images of per_image\.csv/,
    );
    assert.match(r.stderr, /resuming .* at image 7/);
    assert.equal(readFileSync(join(out, 'per_image.csv'), 'utf8'), csv);
    assert.deepEqual(segSummary(join(out, 'summary.json')), segSummary(join(whole, 'summary.json')));
    assert.deepEqual(filesUnder(out), filesUnder(whole));

    // A garbled (not cut) state.json: its checksum tells; every image is in per_image.csv, so nothing is recomputed.
    const again = join(dir, 'garbled');
    cpSync(whole, again, { recursive: true });
    rmSync(join(again, 'summary.json'));
    const state = readFileSync(join(again, 'state.json'), 'utf8');
    writeFileSync(
      join(again, 'state.json'),
      state.replace(/"correct": (\d)/, (_m, d) => `"correct": ${(+d + 1) % 10}`),
    );
    const g = bench([...SEG, '--out', again, '--resume']);
    assert.equal(g.code, 0, g.stderr);
    assert.match(
      reported(g.stderr).join('\n'),
      /^warning: .*state\.json: damaged: its checksum does not match its contents; rebuilt from the 12 complete images/,
    );
    assert.deepEqual(segSummary(join(again, 'summary.json')), segSummary(join(whole, 'summary.json')));
  });

  test('bench seg: per_image.csv changed under a sound state.json, or a garbled run.json → one error line naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-damage-seg-err-'));
    const out = join(dir, 'out');
    const r0 = bench([...SEG, '--out', out]);
    assert.equal(r0.code, 0, r0.stderr);
    rmSync(join(out, 'summary.json'));
    const csv = readFileSync(join(out, 'per_image.csv'), 'utf8');
    writeFileSync(
      join(out, 'per_image.csv'),
      csv.replace(/\n3,([^,]*),rollout,/, '\n3,$1,rollout,'.replace('3,', '4,')),
    );
    const r = bench([...SEG, '--out', out, '--resume']);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(reported(r.stderr).length, 1, r.stderr);
    assert.match(
      reported(r.stderr)[0]!,
      /^bench: error: .*per_image\.csv: does not hold the rows its checkpoint .*state\.json counts \(12 images\): cut or changed/,
    );
    writeFileSync(join(out, 'per_image.csv'), csv);
    writeFileSync(join(out, 'run.json'), '{"command": "seg", "mo');
    const j = bench([...SEG, '--out', out, '--resume']);
    assert.equal(j.code, 1, j.stderr);
    assert.deepEqual(reported(j.stderr), [
      `bench: error: ${join(out, 'run.json')}: damaged (not the JSON bench wrote): cannot check that --resume continues the same run; restore it, or start again with another --out`,
    ]);
    assert.doesNotMatch(j.stderr, /\n\s+at /);
  });

  test('bench eraser: a garbled line in documents.jsonl → a warning; that document and the later ones are recomputed; every file byte-identical', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-damage-eraser-'));
    const args = ['eraser', '--limit', '12', '--method', 'rollout,transformer_attribution', '--quiet'];
    const whole = join(dir, 'whole');
    const r0 = bench([...args, '--out', whole]);
    assert.equal(r0.code, 0, r0.stderr);
    const out = join(dir, 'cut');
    cpSync(whole, out, { recursive: true });
    rmSync(join(out, 'summary.json'));
    const docs = readFileSync(join(out, 'documents.jsonl'), 'utf8').split('\n');
    docs[5] = docs[5]!.slice(0, docs[5]!.length >> 1); // half a line in the middle of the file
    writeFileSync(join(out, 'documents.jsonl'), docs.join('\n'));
    const r = bench([...args, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(reported(r.stderr).length, 1, r.stderr);
    assert.match(
      reported(r.stderr)[0]!,
      /^warning: .*documents\.jsonl: line 6 is not a complete JSON record; keeping the 5 documents before it, the rest is recomputed$/,
    );
    assert.match(r.stderr, /resuming .* at document 5/);
    const all = filesUnder(whole);
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), f);
  });

  test('bench perturb: a damaged state.json → a warning, the run starts again and ends byte-identical', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-damage-perturb-'));
    const vis = join(dir, 'vis');
    const v = bench(['visualize', '--method', 'rollout', '--limit', '8', '--quiet', '--out', vis]);
    assert.equal(v.code, 0, v.stderr);
    const args = ['perturb', '--vis-dir', vis, '--quiet'];
    const whole = join(dir, 'whole');
    const r0 = await benchAsync([...args, '--out', whole]);
    assert.equal(r0.code, 0, r0.stderr);
    const out = join(dir, 'cut');
    cpSync(whole, out, { recursive: true });
    rmSync(join(out, 'summary.json'));
    truncateSync(join(out, 'state.json'), 50);
    const r = bench([...args, '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(reported(r.stderr).length, 1, r.stderr);
    assert.match(
      reported(r.stderr)[0]!,
      /^warning: .*state\.json: damaged: not complete JSON .*starts again from the first row$/,
    );
    const all = filesUnder(whole);
    assert.deepEqual(filesUnder(out), all);
    for (const f of all) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), f);
  });
});
