/**
 * Writes the embedded default data sets from the synthetic shapes generator (deterministic):
 *   embedded/seg/shapes-seg.mat   segmentation set in the gtsegs_ijcv.mat layout (MATLAB v7.3)
 *   embedded/images/sample.png    the default input of `bench explain`
 *   embedded/imagenet/val/<wnid>/ an ImageNet-style validation folder (JPEG, quality 90) for
 *                                 `bench visualize` / `bench perturb`; wnid n0000000k = class k
 *
 *   node --import tsx scripts/make-embedded-data.ts [--seg-images 32] [--val-images 24]
 *
 * Image sizes vary (and are rarely 224×224) so the Pillow-exact resize paths are exercised; seeds are
 * disjoint from the training seeds of scripts/train-embedded-vit.ts.
 */
import { mkdirSync, rmSync } from 'node:fs';
import sharp from 'sharp';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { writeGtsegsMat } from '../src/datasets/gtsegs-writer.js';
import { renderShapeSample, SHAPE_CLASSES } from '../src/datasets/synthetic-shapes.js';
import { EMBEDDED } from '../src/embedded.js';
import { Rng } from '../src/util/random.js';

const args = await yargs(hideBin(process.argv))
  .option('seg-images', { type: 'number', default: 32 })
  .option('val-images', { type: 'number', default: 24 })
  .strict()
  .parseAsync();

const SEG_SEED = 20_000_000;
const rng = new Rng(SEG_SEED);
const items = Array.from({ length: args['seg-images'] }, (_, i) => {
  const width = rng.int(160, 289);
  const height = rng.int(160, 289);
  const s = renderShapeSample(SEG_SEED + i, width, height, i % SHAPE_CLASSES.length);
  return { image: s.image, mask: s.mask, id: `shapes_${SHAPE_CLASSES[s.label]}_${String(i).padStart(3, '0')}` };
});
mkdirSync(`${EMBEDDED.root}/seg`, { recursive: true });
await writeGtsegsMat(EMBEDDED.segData, items, { compressionLevel: 9 });
console.log(`wrote ${EMBEDDED.segData} (${items.length} images)`);

const sample = renderShapeSample(30_000_000, 288, 256, 2);
mkdirSync(`${EMBEDDED.root}/images`, { recursive: true });
await sharp(Buffer.from(sample.image.data), { raw: { width: 288, height: 256, channels: 3 } })
  .png()
  .toFile(EMBEDDED.sampleImage);
console.log(`wrote ${EMBEDDED.sampleImage}`);

const VAL_SEED = 40_000_000;
const valRng = new Rng(VAL_SEED);
rmSync(EMBEDDED.imageFolder, { recursive: true, force: true });
for (let i = 0; i < args['val-images']; i++) {
  const width = valRng.int(160, 321);
  const height = valRng.int(160, 321);
  const label = i % SHAPE_CLASSES.length;
  const s = renderShapeSample(VAL_SEED + i, width, height, label);
  const dir = `${EMBEDDED.imageFolder}/val/n${String(label).padStart(8, '0')}`;
  mkdirSync(dir, { recursive: true });
  await sharp(Buffer.from(s.image.data), { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toFile(`${dir}/ILSVRC2012_val_${String(i + 1).padStart(8, '0')}.JPEG`);
}
console.log(`wrote ${EMBEDDED.imageFolder} (${args['val-images']} images)`);
