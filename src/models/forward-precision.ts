/**
 * The precision of the forward pass: `--forward` on the commands, `BENCH_FORWARD` in the environment (worker
 * threads inherit it). f32 (the default) = the backend's own forward; f64 = src/models/vit-f64.ts and bert-f64.ts. No engine
 * import here: the command definitions (src/commands/options.ts) use it, and `--help` loads no TensorFlow.js.
 */
export const FORWARD_CHOICES = ['f32', 'f64'] as const;
export type ForwardPrecision = (typeof FORWARD_CHOICES)[number];

/** The forward precision of this process, from BENCH_FORWARD (unset: f32); anything else is an error. */
export function forwardPrecision(): ForwardPrecision {
  const v = process.env.BENCH_FORWARD || 'f32';
  if (v === 'f32' || v === 'f64') return v;
  throw new Error(`BENCH_FORWARD must be f32 or f64, not '${v}'`);
}
