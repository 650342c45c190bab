#!/usr/bin/env node
// Runs the compiled CLI (npm ci / npm run build compile src/ to dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
if (!existsSync(compiled)) {
  console.error('likeness: dist/ is missing. Run `npm ci` (or `npm run build`) in the likeness folder first.');
  process.exit(1);
}
const { main } = await import(compiled);
process.exitCode = await main(process.argv.slice(2));
