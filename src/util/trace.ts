/**
 * Start-up milestones for scripts/bench-startup.ts: with BENCH_TRACE_START set, each call writes one
 * stderr line `bench: trace: <event> <ms since the process started>`. Silent otherwise.
 */
export function traceStart(event: string): void {
  if (process.env.BENCH_TRACE_START)
    process.stderr.write(`bench: trace: ${event} ${performance.now().toFixed(1)} ms\n`);
}
