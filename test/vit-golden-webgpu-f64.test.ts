import { vitGoldenSuite } from './helpers/vit-golden-suite.js';
import { webgpuSkip } from './helpers/webgpu.js';

// The float64 forward on webgpu (Dawn; lavapipe in CI): the official float32 numbers within the same tolerances, and
// every raw map at least as close to the official float64 map as the official float32 map is, as on wasm.
vitGoldenSuite('webgpu', await webgpuSkip(), 'f64');
