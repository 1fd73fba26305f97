/**
 * A worker thread of `bench perturb --workers N`: its own backend, model and readers of the explanation files;
 * it runs the classifier passes of the batches it is handed, and the main thread accumulates and checkpoints
 * the counts in order.
 */
import { initBackend } from '../engine/backend.js';
import { serveWorker } from '../engine/worker-pool.js';
import { type ExplanationReader, readExplanations } from '../formats/expl-hdf5.js';
import { loadVit } from '../models/load.js';
import {
  type PerturbItem,
  type PerturbItemResult,
  type PerturbWorkerSetup,
  perturbItemEvaluator,
} from './perturbation.js';

serveWorker<PerturbWorkerSetup, PerturbItem, PerturbItemResult>(async (setup) => {
  await initBackend(setup.backend);
  const model = loadVit(setup.spec);
  const readers = new Map<string, ExplanationReader>();
  for (const input of setup.inputs)
    if (!readers.has(input.file)) readers.set(input.file, await readExplanations(input.file));
  return perturbItemEvaluator(model, setup, (f) => readers.get(f)!, setup.engine);
});
