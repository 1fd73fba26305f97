/**
 * Compares two map files (scripts/map-compare.ts) map by map, with the bounds of mapTolerance(): the maps of one
 * backend against another's (bench:speed --save-maps, scripts/golden-maps.ts).
 *
 *   node --import tsx scripts/compare-maps.ts MINE.safetensors REFERENCE.safetensors [--noise FILE]
 *                                             [--json FILE] [--key NAME]
 *
 * `--noise FILE`: the reference backend's maps of the same input moved by one ulp (bench:speed --jitter-input);
 * each map's bound is then scaled to how far that moves it (mapTolerance).
 * `--json FILE` adds the comparison to FILE under `--key` (default `mapComparison`), keeping its other keys
 * (a bench:speed JSON). Exit status 1 when a map is out of its bounds.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { compareMapFiles, formatComparison } from './map-compare.js';

const args = await yargs(hideBin(process.argv))
  .scriptName('compare-maps')
  .usage('$0 MINE REFERENCE [--json FILE]')
  .demandCommand(2, 2, 'give two map files: MINE REFERENCE')
  .option('noise', { type: 'string', describe: "the reference backend's maps of the input moved by one ulp" })
  .option('json', { type: 'string', describe: 'add the comparison to this JSON file' })
  .option('key', { type: 'string', default: 'mapComparison', describe: 'the key it goes under' })
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`compare-maps: error: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .parseAsync();

const [mine, reference] = args._.map(String) as [string, string];
let c: ReturnType<typeof compareMapFiles>;
try {
  c = compareMapFiles(mine, reference, args.noise);
} catch (e) {
  process.stderr.write(`compare-maps: error: ${(e as Error).message}\n`);
  process.exit(2);
}
console.log(formatComparison(c));
if (args.json) {
  const prior = existsSync(args.json) ? (JSON.parse(readFileSync(args.json, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(args.json, `${JSON.stringify({ ...prior, [args.key]: c }, null, 2)}\n`);
  console.log(`wrote ${args.json}`);
}
process.exitCode = c.pass ? 0 : 1;
