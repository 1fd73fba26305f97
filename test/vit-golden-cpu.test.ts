import { vitGoldenSuite } from './helpers/vit-golden-suite.js';

// The same golden comparisons on the pure-JavaScript cpu backend (a separate process: one backend per process).
vitGoldenSuite('cpu');
