/**
 * The maps of every ViT golden case (config × case × class choice × the paper's six methods) on one backend,
 * written as a map file (scripts/map-compare.ts) with names `<config>/<case>/<top|target>/<method>.raw|.final`,
 * so that two backends can be compared map by map with scripts/compare-maps.ts (issue 14: the webgpu−wasm
 * difference on the goldens, which sets the bound of the ill-conditioned methods in bench:speed's comparison).
 *
 *   node --import tsx scripts/golden-maps.ts --backend webgpu --out /tmp/s1-webgpu.safetensors [--config S1]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_CHOICES, type BackendChoice, initBackend } from '../src/engine/backend.js';
import { explain } from '../src/methods/explain.js';
import { PAPER_METHODS } from '../src/methods/registry.js';
import type { FormulaImage } from '../test/helpers/formula-weights.js';
import {
  caseInput,
  type GoldenCase,
  loadGoldenVit,
  readGoldenTensors,
  readJson,
  vitGoldenCases,
  vitGoldenConfigs,
} from '../test/helpers/golden.js';
import { type SavedMap, writeMapFile } from './map-compare.js';

const args = await yargs(hideBin(process.argv))
  .scriptName('golden-maps')
  .option('backend', { choices: BACKEND_CHOICES, default: 'wasm' as BackendChoice })
  .option('out', { type: 'string', demandOption: true, describe: 'map file to write (.safetensors)' })
  .option('config', { type: 'string', array: true, describe: 'golden ViT configs (default: all)' })
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`golden-maps: error: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .parseAsync();

const backend = await initBackend(args.backend);
console.log(`backend: ${backend.description}`);
const maps = new Map<string, SavedMap>();
const logits = new Map<string, Float32Array>();
const configs = args.config ?? vitGoldenConfigs();
for (const config of configs) {
  const model = await loadGoldenVit(config, args.backend);
  for (const caseName of vitGoldenCases(config)) {
    const meta = readJson<GoldenCase & { image?: FormulaImage }>('vit', config, `case-${caseName}.json`);
    // The geometries G1…G6 hold no input tensor: rebuilt from the case's recipe (as precision.ts does).
    const input = caseInput(readGoldenTensors('vit', config, `case-${caseName}.safetensors`), meta);
    for (const vis of ['top', 'target'] as const) {
      const t0 = performance.now();
      const ex = await explain(model, input, PAPER_METHODS, {
        classes: vis === 'top' ? 'top' : meta.target_class,
        startLayer: 1,
      });
      const prefix = `${config}/${caseName}/${vis}/`;
      logits.set(`${prefix}logits`, ex.logits[0]!);
      for (const m of ex.methods) {
        maps.set(`${prefix}${m.method}`, {
          raw: m.raw[0]!,
          rawShape: m.rawShape,
          map: m.map[0]!,
          mapShape: m.mapShape,
        });
      }
      console.log(`${prefix}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    input.dispose();
  }
}
writeMapFile(args.out, maps, logits, { backend: backend.description, configs: configs.join(',') });
console.log(`wrote ${args.out}`);
