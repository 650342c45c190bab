// On-disk compile cache: a graph is built and written once per (builder version, weights, dtype,
// config); later loads find the model directory and skip the build. Each entry is a directory
// (model.onnx + external data + key.json) written under a temporary name and renamed into place,
// so a directory that exists is complete, even with several processes compiling at once.
import { createHash, randomBytes } from 'node:crypto';
import { open, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GRAPH_BUILDER_VERSION, type ModelDef } from './graph-core.js';
import type { FloatDType } from './dtype.js';
import { writeModel, type WriteOptions } from './serialize.js';

export interface CacheKey {
  /** What the graph is ('unet', 'vae-decoder', …): readable part of the directory name. */
  net: string;
  /** Identifies the weights (e.g. fingerprintFiles of the checkpoint and merged LoRAs). */
  weightsHash: string;
  dtype: FloatDType;
  /** Everything else the graph depends on (shapes, options, LoRA scales); plain JSON data. */
  config: unknown;
  /** Defaults to GRAPH_BUILDER_VERSION. */
  builderVersion?: number;
}

export interface CompiledModel {
  readonly modelPath: string;
  readonly dir: string;
  /** True when the model was already on disk and nothing was built. */
  readonly hit: boolean;
}

export const MODEL_FILE = 'model.onnx';
const KEY_FILE = 'key.json';
const STALE_TMP_MS = 24 * 3600 * 1000;

/** JSON with sorted keys, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

let sourceHash: string | undefined;

/**
 * A hash of the code that builds graphs (this folder and ../nets): any change to a builder makes new
 * cache entries, so an upgrade never runs a graph compiled by older code — a hand-raised version
 * number alone was too easy to forget.
 */
export function builderSourceHash(): string {
  if (sourceHash) return sourceHash;
  const here = dirname(fileURLToPath(import.meta.url));
  const h = createHash('sha256');
  for (const dir of [here, join(here, '..', 'nets')]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => /\.(ts|js)$/.test(n) && !n.endsWith('.d.ts')).sort()) {
      h.update(f).update(readFileSync(join(dir, f)));
    }
  }
  sourceHash = h.digest('hex').slice(0, 16);
  return sourceHash;
}

export function cacheKeyHash(key: CacheKey): string {
  const full = { ...key, builderVersion: key.builderVersion ?? GRAPH_BUILDER_VERSION, builderSource: builderSourceHash() };
  return createHash('sha256').update(canonicalJson(full)).digest('hex');
}

function entryName(key: CacheKey): string {
  const net = key.net.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
  return `${net}-${key.dtype}-${cacheKeyHash(key).slice(0, 32)}`;
}

/** Where the model for `key` lives (whether or not it is compiled yet). */
export function cachedModelPath(cacheDir: string, key: CacheKey): string {
  return join(cacheDir, entryName(key), MODEL_FILE);
}

const inFlight = new Map<string, Promise<CompiledModel>>();

/** The compiled model for `key`: from the cache, or built by `build` and written there. */
export async function compileCached(
  cacheDir: string,
  key: CacheKey,
  build: () => ModelDef | Promise<ModelDef>,
  writeOptions: WriteOptions = {},
): Promise<CompiledModel> {
  const dir = join(cacheDir, entryName(key));
  const modelPath = join(dir, MODEL_FILE);
  if (existsSync(modelPath)) return { modelPath, dir, hit: true };
  const running = inFlight.get(dir);
  if (running) return running;
  const job = compile(cacheDir, dir, key, build, writeOptions).finally(() => inFlight.delete(dir));
  inFlight.set(dir, job);
  return job;
}

async function compile(
  cacheDir: string,
  dir: string,
  key: CacheKey,
  build: () => ModelDef | Promise<ModelDef>,
  writeOptions: WriteOptions,
): Promise<CompiledModel> {
  await mkdir(cacheDir, { recursive: true });
  await removeStaleTemps(cacheDir);
  const tmp = join(cacheDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    await writeModel(await build(), join(tmp, MODEL_FILE), writeOptions);
    const record = { ...key, builderVersion: key.builderVersion ?? GRAPH_BUILDER_VERSION, hash: cacheKeyHash(key) };
    await writeFile(join(tmp, KEY_FILE), `${canonicalJson(record)}\n`);
    await syncDir(tmp);
    try {
      await rename(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another process finished first: its entry is as good as ours.
      if ((code === 'EEXIST' || code === 'ENOTEMPTY') && existsSync(join(dir, MODEL_FILE))) {
        await rm(tmp, { recursive: true, force: true });
        return { modelPath: join(dir, MODEL_FILE), dir, hit: false };
      }
      throw e;
    }
    return { modelPath: join(dir, MODEL_FILE), dir, hit: false };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Flushes the entry's files so a crash after the rename cannot leave a truncated model. */
async function syncDir(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const h = await open(join(dir, name), 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }
}

async function removeStaleTemps(cacheDir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(cacheDir)) {
    if (!name.startsWith('.tmp-')) continue;
    const path = join(cacheDir, name);
    try {
      if (now - (await stat(path)).mtimeMs > STALE_TMP_MS) await rm(path, { recursive: true, force: true });
    } catch {
      // raced with its owner or another cleaner
    }
  }
}

/**
 * A cheap identity for weight files: size plus a SHA-256 over samples (first and last MiB and 16
 * evenly spaced 64 KiB blocks), or over every byte with `full`. Any retrained or merged weights
 * differ in the samples; `full` is for when even that is not enough.
 */
export async function fingerprintFiles(paths: readonly string[], options: { full?: boolean } = {}): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) {
    const h = await open(path, 'r');
    try {
      const { size } = await h.stat();
      hash.update(`${size}\n`);
      const read = async (pos: number, len: number): Promise<void> => {
        const buf = Buffer.alloc(Math.max(0, Math.min(len, size - pos)));
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await h.read(buf, got, buf.length - got, pos + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        hash.update(buf.subarray(0, got));
      };
      if (options.full) {
        for (let pos = 0; pos < size; pos += 16 * 2 ** 20) await read(pos, 16 * 2 ** 20);
      } else {
        await read(0, 2 ** 20);
        for (let i = 1; i <= 16; i++) await read(Math.floor((size * i) / 17), 65536);
        await read(Math.max(0, size - 2 ** 20), 2 ** 20);
      }
    } finally {
      await h.close();
    }
  }
  return hash.digest('hex');
}
