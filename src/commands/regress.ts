import { join, resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice } from '../engine/backend-choice.js';
import { STEAL_LOCK_OPTION, WORKERS_OPTION } from './options.js';

export type Suite = 'paper' | 'embedded';

const REPO = resolve(import.meta.dirname, '../..');
/** The expected numbers of each suite; they ship with the repository, wherever bench is run from. */
export const SUITE_FILES: Record<Suite, string> = {
  paper: join(REPO, 'configs', 'paper.json'),
  embedded: join(REPO, 'results', 'embedded-baseline.json'),
};

export interface RegressArgs {
  suite: Suite;
  results?: string;
  expected?: string;
  model?: string;
  out?: string;
  json?: string;
  update: boolean;
  'run-dir'?: string;
  /** Default: the backend the expected file records (the embedded baseline: wasm), else auto. */
  backend?: BackendChoice;
  workers: number;
  /**
   * Methods of the embedded runs (no --results; default all) and of the comparison (default every method of the
   * expected file): built-in names, 'all', 'paper', plug-in files, or names of methods the results hold.
   */
  method?: string[];
  quiet: boolean;
  'steal-lock'?: boolean;
}

export const regressCommand: CommandModule<object, RegressArgs> = {
  command: 'regress',
  describe: 'compare the latest benchmark results with expected numbers (the paper, or the embedded baseline)',
  builder: (y: Argv) =>
    y
      .option('suite', {
        choices: ['paper', 'embedded'] as const,
        default: 'embedded' as Suite,
        describe:
          'paper: configs/paper.json (ViT-B/16 on ImageNet); embedded: results/embedded-baseline.json (the embedded default)',
      })
      .option('results', {
        type: 'string',
        describe:
          'results folder to compare (searched for finished runs; the newest of each benchmark and model wins). Default: paper → ./results; embedded → run the three embedded benchmarks first',
      })
      .option('expected', { type: 'string', describe: "expected-numbers file instead of the suite's" })
      .option('model', { type: 'string', describe: 'compare the runs of this ViT model name instead of the file’s' })
      .option('out', { type: 'string', describe: 'write the table here (default <results>/regress-<suite>.md)' })
      .option('json', { type: 'string', describe: 'also write every compared number as JSON' })
      .option('update', {
        type: 'boolean',
        default: false,
        describe: 'rewrite the expected file from the results (the embedded baseline), keeping its tolerances',
      })
      .option('run-dir', {
        type: 'string',
        describe:
          'embedded suite without --results: where the benchmarks write (default results/regress/embedded-<time>)',
      })
      .option('backend', {
        choices: BACKEND_CHOICES,
        describe:
          'TensorFlow.js backend for the embedded runs (default: the one the expected file records, so the numbers compare exactly; else auto). With --results: the backend those results were made with, so that the expected file’s tolerances for it apply',
      })
      .option('workers', WORKERS_OPTION)
      .option('steal-lock', STEAL_LOCK_OPTION)
      .option('method', {
        type: 'string',
        array: true,
        describe:
          "only these methods: built-in names, 'all', 'paper', plug-in files ./my-method.ts, or names of methods the results hold. The embedded runs (suite embedded, no --results) explain them (default: all); the comparison takes the expected file's numbers of them (default: every number of the file), and names those the file lacks; --update records the runs' numbers of them and keeps the file's other methods",
      })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'no progress output',
      }) as unknown as Argv<RegressArgs>,
  handler: async (args: ArgumentsCamelCase<RegressArgs>) => {
    const { runRegressCommand } = await import('./regress-run.js');
    await runRegressCommand(args);
  },
};
