#!/usr/bin/env node
// Runs the compiled command line, dist/cli.js (built by `npm ci` through the prepare script, or by
// `npm run build`), so that a start costs no TypeScript compilation. When dist/ is missing, or older than
// a file under src/ (a pull or an edit since the last build), it runs the sources through tsx instead,
// with a note: slower to start, but never stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const dist = new URL('dist/cli.js', root);
const src = new URL('src/', root);

/** Why dist/ cannot be used, or undefined when it is at least as new as every source file. */
function staleReason() {
  if (!existsSync(dist)) return 'dist/ is missing';
  if (!existsSync(src)) return undefined;
  const built = statSync(dist).mtimeMs;
  for (const f of readdirSync(src, { recursive: true })) {
    if (f.endsWith('.ts') && statSync(new URL(f, src)).mtimeMs > built) return `src/${f} is newer than dist/`;
  }
  return undefined;
}

const why = staleReason();
if (why === undefined) {
  await import(dist.href);
} else {
  process.stderr.write(`bench: note: ${why}; running the TypeScript sources through tsx (run 'npm run build')\n`);
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('src/cli.ts', root).href);
}
