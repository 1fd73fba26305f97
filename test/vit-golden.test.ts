import { vitGoldenSuite } from './helpers/vit-golden-suite.js';

// The default backend (native if installed, else wasm).
vitGoldenSuite('auto');
