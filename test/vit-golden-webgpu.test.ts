import { vitGoldenSuite } from './helpers/vit-golden-suite.js';
import { webgpuSkip } from './helpers/webgpu.js';

// The same golden comparisons, with the same tolerances, on the webgpu backend (Dawn; lavapipe in CI).
vitGoldenSuite('webgpu', await webgpuSkip());
