import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError } from '../formats/host-tensor.js';
import { type RunIdentity, readRunIdentity, sameIdentity } from './run-dir.js';

/**
 * Splitting one benchmark run across machines. Shard K of N processes the items i with i mod N = K (so
 * every shard gets a spread of the data, and each shard's order is the data set's order); `bench merge`
 * joins finished shards into the files one machine would have written.
 */
export interface Shard {
  index: number;
  count: number;
}

/** Data-set indices this shard processes, in order. */
export function shardIndices(total: number, shard?: Shard): number[] {
  const out: number[] = [];
  for (let i = shard?.index ?? 0; i < total; i += shard?.count ?? 1) out.push(i);
  return out;
}

export class ShardError extends Error {
  override name = 'ShardError';
}

/** `K/N` → { index: K, count: N } (0 ≤ K < N). */
export function parseShard(value: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count)
    throw new ShardError(`--shard ${value}: expected K/N with 0 ≤ K < N, e.g. 0/4`);
  return { index, count };
}

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v.trim())) throw new ShardError(`${name}=${v}: expected a non-negative integer`);
  return Number(v);
}

/**
 * The shard to run: `--shard K/N` when given; else a Slurm job array's task (SLURM_ARRAY_TASK_ID counted
 * from SLURM_ARRAY_TASK_MIN in steps of SLURM_ARRAY_TASK_STEP, of SLURM_ARRAY_TASK_COUNT); else a
 * Kubernetes Indexed Job's JOB_COMPLETION_INDEX, of BENCH_SHARD_COUNT (a Job does not tell its pods how
 * many completions it has, so the manifest passes it). `--shard 0/1` runs everything even inside an array.
 */
export function resolveShard(
  value: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { shard?: Shard; source?: string } {
  if (value !== undefined) {
    const shard = parseShard(value);
    return shard.count > 1 ? { shard, source: '--shard' } : {};
  }
  const slurmId = envInt(env, 'SLURM_ARRAY_TASK_ID');
  if (slurmId !== undefined) {
    const count = envInt(env, 'SLURM_ARRAY_TASK_COUNT');
    const min = envInt(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const step = envInt(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
    if (count === undefined) throw new ShardError('SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not');
    const index = (slurmId - min) / Math.max(1, step);
    if (!Number.isInteger(index) || index < 0 || index >= count)
      throw new ShardError(
        `SLURM_ARRAY_TASK_ID=${slurmId} (min ${min}, step ${step}) is not one of ${count} evenly spaced tasks; give --shard K/N`,
      );
    return count > 1
      ? { shard: { index, count }, source: `SLURM_ARRAY_TASK_ID=${slurmId} of SLURM_ARRAY_TASK_COUNT=${count}` }
      : {};
  }
  const jobIndex = envInt(env, 'JOB_COMPLETION_INDEX');
  if (jobIndex !== undefined) {
    const count = envInt(env, 'BENCH_SHARD_COUNT');
    if (count === undefined)
      throw new ShardError(
        'JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but the number of shards is unknown: set BENCH_SHARD_COUNT to the Job’s completions, or give --shard K/N',
      );
    if (jobIndex >= count)
      throw new ShardError(`JOB_COMPLETION_INDEX=${jobIndex} is not below BENCH_SHARD_COUNT=${count}`);
    return count > 1
      ? { shard: { index: jobIndex, count }, source: `JOB_COMPLETION_INDEX=${jobIndex} of BENCH_SHARD_COUNT=${count}` }
      : {};
  }
  return {};
}

/** The output-folder suffix of a shard: `-shard-K-of-N`. */
export function shardSuffix(shard: Shard | undefined): string {
  return shard ? `-shard-${shard.index}-of-${shard.count}` : '';
}

export interface ShardRun {
  dir: string;
  identity: RunIdentity;
  shard: Shard;
}

/**
 * Checks that folders are the finished shards of one run: same command and request (identity without
 * the shard), the same N, every K from 0 to N − 1 exactly once, each with its final file. Returns them
 * ordered by K, and the identity the merged run has (no shard).
 */
export function checkShardSet(
  dirs: readonly string[],
  finalFile: (id: RunIdentity) => string,
): {
  shards: ShardRun[];
  identity: RunIdentity;
} {
  const runs: ShardRun[] = dirs.map((dir) => {
    const identity = readRunIdentity(dir);
    if (!identity) throw new FileFormatError(join(dir, 'run.json'), 'missing or unreadable: not a bench run folder');
    const shard = identity.shard as Shard | null | undefined;
    if (!shard || typeof shard.index !== 'number' || typeof shard.count !== 'number')
      throw new ShardError(`${dir}: not a shard (its run.json has no shard); only --shard K/N runs can be merged`);
    return { dir, identity, shard };
  });
  const { shard: _s, ...base } = runs[0]!.identity;
  const count = runs[0]!.shard.count;
  for (const r of runs) {
    const { shard: _r, ...rest } = r.identity;
    if (!sameIdentity(rest, base))
      throw new ShardError(
        `${r.dir}: a shard of a different run than ${runs[0]!.dir} (command, model, weights, data or options differ)`,
      );
    if (r.shard.count !== count)
      throw new ShardError(`${r.dir}: shard ${r.shard.index}/${r.shard.count}, but ${runs[0]!.dir} is one of ${count}`);
    if (!existsSync(join(r.dir, finalFile(r.identity))))
      throw new ShardError(
        `${r.dir}: shard ${r.shard.index}/${count} is unfinished (no ${finalFile(r.identity)}); finish it with --resume first`,
      );
  }
  const byIndex = new Map<number, ShardRun>();
  for (const r of runs) {
    const other = byIndex.get(r.shard.index);
    if (other) throw new ShardError(`${r.dir} and ${other.dir} are both shard ${r.shard.index}/${count}`);
    byIndex.set(r.shard.index, r);
  }
  const missing = Array.from({ length: count }, (_, k) => k).filter((k) => !byIndex.has(k));
  if (missing.length)
    throw new ShardError(
      `shard${missing.length > 1 ? 's' : ''} ${missing.map((k) => `${k}/${count}`).join(', ')} missing`,
    );
  return {
    shards: [...byIndex.values()].sort((a, b) => a.shard.index - b.shard.index),
    identity: { ...base, shard: null } as RunIdentity,
  };
}
