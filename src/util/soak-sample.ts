import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Telemetry for long runs (`npm run soak`, scripts/soak.ts). With BENCH_SOAK_SAMPLE=N (a positive integer) in
 * the environment, every progress bar (seg, visualize, perturb, …) writes one stderr line
 *
 *     bench: soak-sample {"label":"seg","images":100,"total":4276,"ms":…,"rssBytes":…,"wasmHeapBytes":…,…}
 *
 * when it starts, each time its count passes a multiple of N, and when it stops. What only the process itself
 * can see is in it: the wasm heap (the backend's WebAssembly memory, which grows and never shrinks, so it is a
 * high-water mark), the tensors TensorFlow.js holds, V8's heap. Silent, and TensorFlow.js is not touched, when
 * the variable is unset.
 *
 * Each sample is taken right after a full garbage collection, so that its memory figures are what the process
 * keeps, not where V8's collection cycle happened to be: without it, RSS read at two points 100 images apart in a
 * flat run differed by up to 5 % (the CI-sized soak's visualize, 225.9 → 237.6 MiB, with the wasm heap flat).
 * RSS still depends on the moment: perturb's moves by ≈ 85 MiB of native memory between a batch in flight and a
 * drained pipeline. The kernel's high-water mark of RSS (`peakRssBytes`) does not: like the wasm heap, it settles
 * within the first batches of a flat run and rises again only when the process needs more than ever before.
 */
export interface SoakSample {
  label: string;
  images: number;
  total: number;
  /** performance.now() of this process. */
  ms: number;
  final: boolean;
  /** Resident set size, read by the process right after the full collection. */
  rssBytes: number;
  /**
   * The highest RSS the process has had so far: the kernel's high-water mark (getrusage's ru_maxrss, /proc's
   * VmHWM), and never below an RSS this process has read (the two are read one after the other, with other threads
   * running).
   */
  peakRssBytes: number;
  jsHeapBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** The wasm backend's heap; null on another backend. */
  wasmHeapBytes: number | null;
  tfTensors: number | null;
  tfBytes: number | null;
  /** Entries of /proc/self/fd (the listing's own descriptor excluded); null where there is no /proc. */
  openFds: number | null;
}

export const SOAK_SAMPLE_PREFIX = 'bench: soak-sample ';

interface TfLike {
  getBackend(): string | undefined;
  backend(): unknown;
  memory(): { numTensors: number; numBytes: number };
}

let tfModule: TfLike | null | undefined;

function tf(): TfLike | null {
  if (tfModule === undefined) {
    try {
      tfModule = createRequire(import.meta.url)('@tensorflow/tfjs') as TfLike;
    } catch {
      tfModule = null;
    }
  }
  return tfModule;
}

function openFds(): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

let collector: (() => void) | undefined;
let peakRss = 0;

/**
 * V8's full garbage collection. `global.gc` exists only under --expose-gc, which bench is not started with;
 * setting the flag at run time exposes `gc` to contexts made after it, so one new context hands it over.
 */
function fullGc(): void {
  if (!collector) {
    const own = (globalThis as { gc?: () => void }).gc;
    if (own) collector = own;
    else {
      setFlagsFromString('--expose-gc');
      collector = runInNewContext('gc') as () => void;
    }
  }
  collector();
}

export function takeSoakSample(label: string, images: number, total: number, final: boolean): SoakSample {
  fullGc();
  const mem = process.memoryUsage();
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024, mem.rss);
  const t = tf();
  let wasmHeapBytes: number | null = null;
  let tfTensors: number | null = null;
  let tfBytes: number | null = null;
  if (t?.getBackend()) {
    const m = t.memory();
    tfTensors = m.numTensors;
    tfBytes = m.numBytes;
    if (t.getBackend() === 'wasm') {
      const heap = (t.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
      wasmHeapBytes = heap ? heap.buffer.byteLength : null;
    }
  }
  return {
    label,
    images,
    total,
    ms: performance.now(),
    final,
    rssBytes: mem.rss,
    peakRssBytes: peakRss,
    jsHeapBytes: mem.heapUsed,
    externalBytes: mem.external,
    arrayBuffersBytes: mem.arrayBuffers,
    wasmHeapBytes,
    tfTensors,
    tfBytes,
    openFds: openFds(),
  };
}

/** The sampling interval from BENCH_SOAK_SAMPLE, or undefined (no sampling). */
export function soakEvery(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.BENCH_SOAK_SAMPLE;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_SOAK_SAMPLE must be a positive integer, got '${v}'`);
  return n;
}

/** Emits samples for one progress bar: at its start value, at each multiple of `every` passed, at the end. */
export class SoakSampler {
  private next: number;
  private last: number;

  constructor(
    readonly label: string,
    readonly total: number,
    readonly every: number,
    start: number,
  ) {
    this.last = start;
    this.next = (Math.floor(start / every) + 1) * every;
    this.emit(start, false);
  }

  update(value: number): void {
    this.last = value;
    if (value < this.next) return;
    this.next = (Math.floor(value / this.every) + 1) * this.every;
    this.emit(value, false);
  }

  stop(): void {
    this.emit(this.last, true);
  }

  private emit(images: number, final: boolean): void {
    const s = takeSoakSample(this.label, images, this.total, final);
    process.stderr.write(`\n${SOAK_SAMPLE_PREFIX}${JSON.stringify(s)}\n`);
  }

  static fromEnv(label: string, total: number, start: number): SoakSampler | undefined {
    const every = soakEvery();
    return every === undefined ? undefined : new SoakSampler(label, total, every, start);
  }
}
