#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so a clean clone needs only `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
