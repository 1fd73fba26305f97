import type { StateDict } from '../src/formats/host-tensor.js';
import type { VitConfig } from '../src/models/vit-config.js';
import { expectedVitKeys } from '../src/models/vit-weights.js';

/** Deterministic pseudo-random weights with roughly trained-model scales (LayerNorm gains near 1). */
export function randomStateDict(cfg: VitConfig): StateDict {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const sd: StateDict = new Map();
  for (const [k, shape] of expectedVitKeys(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormGain = /norm\d?\.weight$/.test(k);
    const scale = k.endsWith('.bias') ? 0.02 : isNormGain ? 0.1 : 0.07;
    for (let i = 0; i < n; i++) data[i] = (isNormGain ? 1 : 0) + scale * rand();
    sd.set(k, { shape, data });
  }
  return sd;
}
