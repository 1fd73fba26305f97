// `node --import ./test/helpers/record-imports.mjs …`: appends the URL of every module the program's
// imports resolve to, one per line, to the file named by BENCH_RECORD_IMPORTS (test/startup.test.ts).
import { register } from 'node:module';

register('./record-imports-hooks.mjs', import.meta.url, { data: { file: process.env.BENCH_RECORD_IMPORTS } });
