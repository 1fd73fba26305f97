import { resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { writeReport } from '../reports/report-page.js';
import { checkOutputPath } from '../util/files.js';
import { SUITE_FILES } from './regress.js';

export interface ReportArgs {
  results: string;
  out?: string;
  gallery: number;
}

export async function runReportCommand(args: ReportArgs): Promise<void> {
  const resultsDir = resolve(args.results);
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  const outDir = resolve(args.out ?? `${resultsDir}/report`);
  const r = await writeReport({
    resultsDir,
    outDir,
    paperFile: SUITE_FILES.paper,
    galleryImages: args.gallery,
    log: (s) => process.stderr.write(`${s}\n`),
  });
  console.log(`sections: ${r.sections.join(', ') || 'none (no finished runs found)'}`);
  console.log(`wrote ${r.markdown}\nwrote ${r.html} (self-contained; open it in a browser)`);
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
      }) as unknown as Argv<ReportArgs>,
  handler: async (args: ArgumentsCamelCase<ReportArgs>) => {
    await runReportCommand(args);
  },
};
