import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { methodOptionHelp } from '../methods/names.js';

export interface ReportArgs {
  results: string;
  out?: string;
  gallery: number;
  method?: string[];
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report',
  describe: 'one Markdown + HTML page over a results folder: every benchmark table, the plots, an overlay gallery',
  builder: (y: Argv) =>
    y
      .option('results', { type: 'string', default: 'results', describe: 'results folder to report on' })
      .option('out', { type: 'string', describe: 'output folder (default <results>/report)' })
      .option('gallery', {
        type: 'number',
        default: 6,
        describe: 'images per method in the overlay gallery',
      })
      .option('method', {
        type: 'string',
        array: true,
        describe: `${methodOptionHelp('only these methods, in this order (repeatable or comma-separated)')}, or the name of a method the results hold. Each table, plot and gallery shows them, per model from the newest finished run holding each`,
      }) as unknown as Argv<ReportArgs>,
  handler: async (args: ArgumentsCamelCase<ReportArgs>) => {
    const { runReportCommand } = await import('./report-run.js');
    await runReportCommand(args);
  },
};
