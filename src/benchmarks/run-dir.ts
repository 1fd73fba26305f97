import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileFormatError, fsErrorReason } from '../formats/host-tensor.js';
import { removeStaleTempFiles, writeJsonAtomic } from '../util/files.js';

/**
 * Where a benchmark run writes, and how it resumes. A run directory holds `run.json` (what was asked:
 * model, weights, data, methods, options) and a `state.json` checkpoint written atomically after every
 * item. `--resume` continues only a run whose run.json matches the new request exactly, so resumed
 * numbers are the numbers an uninterrupted run gives.
 */
export interface RunIdentity {
  command: string;
  [key: string]: unknown;
}

/** What every checkpointed benchmark run takes besides its own inputs. */
export interface RunControl {
  outDir: string;
  /** Identity of the run (model, weights, data, methods, options), stored in run.json. */
  identity: RunIdentity;
  limit?: number;
  resume?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
}

export function timestampName(d = new Date()): string {
  return d
    .toISOString()
    .replace(/[:]/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

/** The default output folder: results/<command>/<model>/<name or timestamp>. */
export function defaultRunDir(command: string, model: string, name?: string): string {
  return resolve('results', command, model, name ?? timestampName());
}

/** The most recent run under `parent` with this identity that has a checkpoint but no final summary. */
export function findResumableRun(parent: string, identity: RunIdentity, finalFile: string): string | undefined {
  if (!existsSync(parent)) return undefined;
  const dirs = readdirSync(parent)
    .map((d) => join(parent, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'run.json')) && existsSync(join(d, 'state.json')))
    .filter((d) => !existsSync(join(d, finalFile)) && sameIdentity(readRunIdentity(d), identity))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return dirs[0];
}

export function readRunIdentity(dir: string): RunIdentity | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunIdentity;
  } catch {
    return undefined;
  }
}

export function sameIdentity(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function writeRunIdentity(dir: string, identity: RunIdentity): void {
  writeJsonAtomic(join(dir, 'run.json'), identity);
}

/** A file's identity for run.json: absolute path, size and modification time (cheap, no hashing). */
export function fileIdentity(file: string): { path: string; bytes: number; mtime: string } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (e) {
    throw new FileFormatError(file, fsErrorReason(e));
  }
  return { path: resolve(file), bytes: st.size, mtime: st.mtime.toISOString() };
}

/**
 * Start or resume a run in `outDir`. A folder that already holds a run (its `marker` file exists) is
 * continued only with `resume` and only when its run.json matches `identity` exactly; otherwise the
 * identity is written and a fresh run starts. Returns whether the run resumes.
 */
export function beginRun(
  outDir: string,
  identity: RunIdentity,
  resume: boolean | undefined,
  marker = 'run.json',
): boolean {
  if (!existsSync(join(outDir, marker))) {
    writeRunIdentity(outDir, identity);
    return false;
  }
  if (!resume)
    throw new Error(`${outDir} already holds a run (${marker}); pass --resume to continue it, or choose another --out`);
  const runFile = join(outDir, 'run.json');
  const found = readRunIdentity(outDir);
  if (!found || typeof found.command !== 'string') {
    throw new FileFormatError(
      runFile,
      `${existsSync(runFile) ? 'damaged (not the JSON bench wrote)' : 'missing'}: cannot check that --resume continues the same run; restore it, or start again with another --out`,
    );
  }
  if (!sameIdentity(found, identity)) {
    throw new Error(
      `${outDir}: cannot resume: run.json describes a different run (model, weights, data, methods or options differ)`,
    );
  }
  removeStaleTempFiles(outDir);
  return true;
}

/** The checksum a checkpoint carries (`check`): SHA-256 of its JSON without it. */
function checksum(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** Writes a checkpoint (state.json) atomically, with a checksum of its contents. */
export function writeCheckpoint(file: string, value: object): void {
  writeJsonAtomic(file, { ...value, check: checksum(value) });
}

/**
 * Reads a checkpoint written by writeCheckpoint: its value, or what is wrong with it (missing, not JSON, cut, or
 * changed since it was written: the checksum does not match), so that the run can rebuild it or say so.
 */
export function readCheckpoint<T>(file: string): { value: T; problem?: undefined } | { problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return { problem: fsErrorReason(e) };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { problem: `damaged: not complete JSON (${(e as Error).message})` };
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: 'damaged: not a JSON object' };
  const { check, ...value } = parsed as { check?: unknown };
  if (typeof check !== 'string') return { problem: 'damaged or from an older bench: no checksum' };
  if (check !== checksum(value)) return { problem: 'damaged: its checksum does not match its contents' };
  return { value: value as T };
}
