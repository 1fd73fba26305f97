/**
 * A worker thread of `bench visualize --workers N`: its own backend, model and image folder; it explains
 * the images it is handed, and the main thread writes the rows in order.
 */
import { openImageFolder } from '../datasets/imagenet-folder.js';
import { initBackend } from '../engine/backend.js';
import { serveWorker } from '../engine/worker-pool.js';
import { methodsInWorker } from '../methods/plugins.js';
import { loadVit } from '../models/load.js';
import { explainVisImage, type VisImageResult, type VisWorkerItem, type VisWorkerSetup } from './visualize.js';

serveWorker<VisWorkerSetup, VisWorkerItem, VisImageResult>(async (setup) => {
  await initBackend(setup.backend);
  const model = loadVit(setup.spec);
  const folder = openImageFolder(setup.folder.root, setup.folder.options);
  await methodsInWorker([], setup.plugins); // imports and checks the plug-ins once, at setup
  return async ({ index, methods }) =>
    explainVisImage(
      model,
      folder,
      index,
      await methodsInWorker(methods, setup.plugins),
      setup.visClass,
      setup.startLayer,
    );
});
