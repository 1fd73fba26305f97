import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { eraserCommand } from './commands/eraser.js';
import { explainCommand } from './commands/explain.js';
import { mergeCommand } from './commands/merge.js';
import { perturbCommand } from './commands/perturb.js';
import { regressCommand } from './commands/regress.js';
import { reportCommand } from './commands/report.js';
import { segCommand } from './commands/seg.js';
import { visualizeCommand } from './commands/visualize.js';
import { RunStopped } from './util/interrupt.js';

/**
 * `bench`: the command-line entry. Commands only parse options and call library functions that the tests
 * also call. Errors in user input are printed as one line (no stack trace) with a non-zero exit status;
 * set BENCH_DEBUG=1 to see the stack.
 *
 * The command modules imported here only define options; each handler imports its command's work
 * (src/commands/<name>-run.ts, which loads TensorFlow.js, h5wasm, sharp) when it runs, so that --help and
 * --version answer at once.
 */
function fail(msg: string | undefined, err: Error | undefined): never {
  if (err instanceof RunStopped) {
    // SIGINT/SIGTERM: the checkpoint is written; not an error of the run.
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const text = err?.message ?? msg ?? 'unknown error';
  if (process.env.BENCH_DEBUG && err?.stack) process.stderr.write(`${err.stack}\n`);
  process.stderr.write(`bench: error: ${text}\n`);
  if (!err) process.stderr.write("run 'bench --help' or 'bench <command> --help' for the options\n");
  process.exit(err ? 1 : 2);
}

/** The package version: package.json is one level up from src/cli.ts and from dist/cli.js alike. */
const VERSION = (
  JSON.parse(readFileSync(resolve(import.meta.dirname, '../package.json'), 'utf8')) as { version: string }
).version;

try {
  await yargs(hideBin(process.argv))
    .scriptName('bench')
    .usage(
      '$0 <command> [options]\n\nBenchmarks of "Transformer Interpretability Beyond Attention Visualization" (Chefer et al., CVPR 2021) for ViT/DeiT.',
    )
    .command(explainCommand)
    .command(segCommand)
    .command(visualizeCommand)
    .command(perturbCommand)
    .command(eraserCommand)
    .command(mergeCommand)
    .command(regressCommand)
    .command(reportCommand)
    .demandCommand(1, 'give a command')
    .strict()
    .fail((msg, err) => fail(msg, err))
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .wrap(Math.min(120, process.stdout.columns || 120))
    .parseAsync();
} catch (e) {
  fail(undefined, e instanceof Error ? e : new Error(String(e)));
}
