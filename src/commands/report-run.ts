import { resolve } from 'node:path';
import { writeReport } from '../reports/report-page.js';
import { checkOutputPath } from '../util/files.js';
import { SUITE_FILES } from './regress.js';
import type { ReportArgs } from './report.js';

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
