import { resolve } from 'node:path';
import { writeReport } from '../reports/report-page.js';
import { indexResults } from '../reports/results-index.js';
import { checkOutputPath } from '../util/files.js';
import { selectedMethodNames } from './method-selection.js';
import { SUITE_FILES } from './regress.js';
import type { ReportArgs } from './report.js';

export async function runReportCommand(args: ReportArgs): Promise<void> {
  const resultsDir = resolve(args.results);
  if (args.out) checkOutputPath(args.out, 'folder', '--out');
  const outDir = resolve(args.out ?? `${resultsDir}/report`);
  const index = indexResults(resultsDir);
  const methods = args.method?.length ? await selectedMethodNames(args.method, index) : undefined;
  const r = await writeReport({
    resultsDir,
    outDir,
    paperFile: SUITE_FILES.paper,
    galleryImages: args.gallery,
    methods,
    index,
    log: (s) => process.stderr.write(`${s}\n`),
  });
  if (methods) console.log(`methods: ${methods.join(', ')}`);
  console.log(`sections: ${r.sections.join(', ') || 'none (no finished runs found)'}`);
  console.log(`wrote ${r.markdown}\nwrote ${r.html} (self-contained; open it in a browser)`);
}
