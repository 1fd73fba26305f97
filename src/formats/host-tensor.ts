import { readFileSync } from 'node:fs';
/**
 * Tensors as they come out of a file, before they reach the engine: a flat typed array in C (row-major)
 * order plus a shape. Every weight loader returns a `StateDict` of these, always float32 for floating
 * data, so the model code never sees the file's storage dtype.
 */
export type HostData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface HostTensor {
  shape: number[];
  data: HostData;
}

/** Parameter name → tensor, in file order. */
export type StateDict = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}

/**
 * Control characters escaped (\n → \x0a …), so that text quoted from a corrupt file (a zip entry name, a pickled
 * global, a byte-order string) cannot break the one-line error or garble the terminal.
 */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A readable failure in a user-supplied file: always names the file and what was wrong with it. */
export class FileFormatError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${oneLine(problem)}`);
    this.name = 'FileFormatError';
  }
}

/** float16 bits → float32 value (IEEE 754 half precision, subnormals and inf/nan included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits → float32 value: the upper half of a float32. */
export function bfloat16ToFloat(b: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setUint32(0, (b & 0xffff) << 16, true);
  return buf.getFloat32(0, true);
}

/** Why a file could not be read, in words: 'file not found', 'is a directory', or 'cannot read file (CODE)'. */
export function fsErrorReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EISDIR') return 'is a directory';
  return `cannot read file (${code ?? (e instanceof Error ? e.message : String(e))})`;
}

/** Read a whole input file; failures become a FileFormatError naming the file. */
export function readInputFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new FileFormatError(file, fsErrorReason(e));
  }
}
