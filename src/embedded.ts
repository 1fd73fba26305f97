import { resolve } from 'node:path';

/**
 * The embedded default: small synthetic data sets and a small trained model shipped in the repo, used by
 * every command when it is given no paths (see embedded/README.md for how each file was made).
 */
const ROOT = resolve(import.meta.dirname, '../embedded');

export const EMBEDDED = {
  root: ROOT,
  model: {
    config: resolve(ROOT, 'models/vit-shapes/config.json'),
    weights: resolve(ROOT, 'models/vit-shapes/weights.safetensors'),
  },
  segData: resolve(ROOT, 'seg/shapes-seg.mat'),
  sampleImage: resolve(ROOT, 'images/sample.png'),
  imageFolder: resolve(ROOT, 'imagenet'),
  eraser: { data: resolve(ROOT, 'eraser/data'), model: resolve(ROOT, 'eraser/model') },
};
