/**
 * A worker thread of `bench seg --workers N`: its own backend and copy of the model and data set; it
 * explains and scores the images it is handed, and the main thread consumes the results in order.
 */
import { openGtsegs } from '../datasets/gtsegs.js';
import { initBackend } from '../engine/backend.js';
import { serveWorker } from '../engine/worker-pool.js';
import { methodsInWorker } from '../methods/plugins.js';
import { loadVit } from '../models/load.js';
import { evaluateSegImage, type SegImageResult, type SegWorkerItem, type SegWorkerSetup } from './segmentation.js';

serveWorker<SegWorkerSetup, SegWorkerItem, SegImageResult>(async (setup) => {
  await initBackend(setup.backend);
  const model = loadVit(setup.spec);
  const ds = await openGtsegs(setup.dataFile, { warn: () => {} });
  const methods = await methodsInWorker(setup.methods, setup.plugins);
  return ({ index, keepMaps }) => evaluateSegImage(model, ds, index, methods, setup.startLayer, keepMaps);
});
