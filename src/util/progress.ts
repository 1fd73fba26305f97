import cliProgress from 'cli-progress';
import { SoakSampler } from './soak-sample.js';

/**
 * A progress bar with items/s and ETA on a terminal, and plain periodic lines when stderr is not a TTY
 * (CI logs, batch jobs). Always on stderr, so stdout stays clean for results.
 */
export class Progress {
  private readonly bar: cliProgress.SingleBar;
  private readonly start = Date.now();
  private readonly startValue: number;
  /** BENCH_SOAK_SAMPLE telemetry (soak-sample.ts); undefined when the variable is unset. */
  private readonly sampler: SoakSampler | undefined;

  constructor(
    readonly label: string,
    total: number,
    startValue = 0,
    quiet = false,
  ) {
    this.startValue = startValue;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} | {rate} img/s | ETA {eta_formatted} | {info}`,
        stream: process.stderr,
        noTTYOutput: !quiet,
        notTTYSchedule: 5000,
        hideCursor: true,
        etaBuffer: 50,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    if (!quiet) this.bar.start(total, startValue, { rate: '-', info: '' });
    this.sampler = SoakSampler.fromEnv(label, total, startValue);
  }

  update(value: number, info = ''): void {
    const secs = (Date.now() - this.start) / 1000;
    const rate = secs > 0 ? ((value - this.startValue) / secs).toFixed(2) : '-';
    this.bar.update(value, { rate, info });
    this.sampler?.update(value);
  }

  stop(): void {
    this.bar.stop();
    this.sampler?.stop();
  }
}
