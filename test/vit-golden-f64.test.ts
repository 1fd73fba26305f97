import { vitGoldenSuite } from './helpers/vit-golden-suite.js';

// The float64 forward (--forward f64, src/models/vit-f64.ts) on wasm: the official float32 numbers within the same
// tolerances, and every raw map at least as close to the official float64 map as the official float32 map is.
vitGoldenSuite('wasm', false, 'f64');
