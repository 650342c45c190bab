// Where the shared goldens and assets live: ../shared beside the checkout (read-only, never copied in).
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const sharedDir = process.env.LIKENESS_SHARED ?? resolve(repoRoot, '..', 'shared');
export const goldensDir = join(sharedDir, 'goldens');
export const assetsDir = join(sharedDir, 'assets');

export function golden(name: string): string {
  const dir = join(goldensDir, name);
  if (!existsSync(dir)) throw new Error(`golden case ${name} not found at ${dir} (set LIKENESS_SHARED to the shared/ folder)`);
  return dir;
}

export function asset(relative: string): string {
  const path = join(assetsDir, relative);
  if (!existsSync(path)) throw new Error(`test asset ${relative} not found at ${path} (set LIKENESS_SHARED to the shared/ folder)`);
  return path;
}

export function allGoldenCases(): string[] {
  return readdirSync(goldensDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(goldensDir, d.name, 'case.json')))
    .map((d) => join(goldensDir, d.name))
    .sort();
}
