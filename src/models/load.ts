import { activeBackendName, activeGpuLimits } from '../engine/backend.js';
import { readWeights } from '../formats/weights.js';
import { BertForSequenceClassification } from './bert.js';
import { readBertConfig } from './bert-config.js';
import { bertWeightsFromStateDict } from './bert-weights.js';
import { assertFitsBackend, assertFitsGpu, largestBertTensor } from './memory.js';
import { VisionTransformer } from './vit.js';
import { readVitConfig, type VitConfig, vitPreset } from './vit-config.js';
import { vitWeightsFromStateDict } from './vit-weights.js';

export interface ModelSpec {
  /** Path of a config JSON with timm names, or undefined to use `preset`. */
  configFile?: string;
  preset?: string;
  weightsFile: string;
  /** Override the input normalisation: 'half' = mean/std 0.5 (the reference notebooks), 'imagenet'. */
  norm?: 'half' | 'imagenet' | 'config';
}

export function resolveVitConfig(spec: Omit<ModelSpec, 'weightsFile'>): VitConfig {
  let cfg: VitConfig;
  if (spec.configFile) cfg = readVitConfig(spec.configFile);
  else if (spec.preset) cfg = vitPreset(spec.preset);
  else throw new Error('no model given: pass --model-config FILE or --model PRESET');
  if (spec.norm === 'half') cfg = { ...cfg, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  if (spec.norm === 'imagenet') cfg = { ...cfg, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
  return cfg;
}

/**
 * Read a config and a checkpoint (any supported format) into a ready model. Call after initBackend(). A
 * model the backend's heap cannot hold is refused before a byte of the weights is read.
 */
export function loadVit(spec: ModelSpec): VisionTransformer {
  const cfg = resolveVitConfig(spec);
  assertFitsBackend(activeBackendName(), cfg, spec.weightsFile, activeGpuLimits());
  const sd = readWeights(spec.weightsFile);
  return new VisionTransformer(cfg, vitWeightsFromStateDict(sd, cfg, spec.weightsFile));
}

/** Read an HF BertConfig config.json and a checkpoint (safetensors or PyTorch) into a ready model. */
export function loadBert(configFile: string, weightsFile: string): BertForSequenceClassification {
  const cfg = readBertConfig(configFile);
  const gpu = activeGpuLimits();
  if (gpu) assertFitsGpu(gpu, largestBertTensor(cfg), cfg.name, weightsFile);
  return new BertForSequenceClassification(cfg, bertWeightsFromStateDict(readWeights(weightsFile), cfg, weightsFile));
}
