// On-disk compile cache: a graph is built and written once per (builder version, weights, dtype,
// config); later loads find the model directory and skip the build. Each entry is a directory
// (model.onnx + external data + key.json) written under a temporary name and renamed into place,
// so a directory that exists is complete, even with several processes compiling at once.
//
// Bounded: after each new entry, least recently used entries are evicted until the cache holds at
// most cacheMaxBytes() (LIKENESS_CACHE_MAX_BYTES, default 32 GiB). An entry is never evicted while in
// use: compileCached() holds it (in this process, and as a `.held-<pid>` file other processes see)
// until the CompiledModel's release(), which the nets call when their session is disposed. Last use
// is key.json's mtime, touched on every hit. `likeness cache ls` / `likeness cache prune` show and
// trim it by hand.
import { createHash, randomBytes } from 'node:crypto';
import { open, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GRAPH_BUILDER_VERSION, type ModelDef } from './graph-core.js';
import type { FloatDType } from './dtype.js';
import { writeModel, type WriteOptions } from './serialize.js';
import { PACKED_TMP_PREFIX, packedCopyHome } from './packed-copy.js';

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
  /** Ends this use of the entry (call once its session is disposed); until then it is never evicted. */
  release(): void;
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

const inFlight = new Map<string, Promise<{ hit: boolean }>>();

/**
 * The compiled model for `key`: from the cache, or built by `build` and written there (then the
 * cache is trimmed to `maxBytes`, default cacheMaxBytes()). The entry is held until release().
 */
export async function compileCached(
  cacheDir: string,
  key: CacheKey,
  build: () => ModelDef | Promise<ModelDef>,
  writeOptions: WriteOptions & { maxBytes?: number } = {},
): Promise<CompiledModel> {
  const dir = join(cacheDir, entryName(key));
  const modelPath = join(dir, MODEL_FILE);
  const release = holdEntry(dir);
  try {
    if (existsSync(modelPath)) {
      touch(dir);
      return { modelPath, dir, hit: true, release };
    }
    let job = inFlight.get(dir);
    if (!job) {
      const { maxBytes: _bound, ...write } = writeOptions;
      job = compile(cacheDir, dir, key, build, write).finally(() => inFlight.delete(dir));
      inFlight.set(dir, job);
      const { hit } = await job;
      holdFile(dir); // the directory exists now
      await pruneCache(cacheDir, { maxBytes: writeOptions.maxBytes ?? cacheMaxBytes() });
      return { modelPath, dir, hit, release };
    }
    const { hit } = await job;
    return { modelPath, dir, hit, release };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Opens a session on a compiled model and keeps the entry held until that session is disposed
 * (released at once if the open fails).
 */
export async function openHeld<S extends { dispose(): Promise<void> }>(
  compiled: CompiledModel,
  open: (modelPath: string, extra: { packedCopy?: string }) => Promise<S>,
): Promise<S> {
  let session: S;
  try {
    const packedCopy = packedCopyHome(compiled.dir);
    session = await open(compiled.modelPath, packedCopy ? { packedCopy } : {});
  } catch (e) {
    compiled.release();
    throw e;
  }
  const dispose = session.dispose.bind(session);
  session.dispose = async () => {
    try {
      await dispose();
    } finally {
      compiled.release();
    }
  };
  return session;
}

// ---- use, size bound and eviction ----

const DEFAULT_MAX_BYTES = 32 * 2 ** 30;
const HELD_PREFIX = '.held-';
const held = new Map<string, number>();

/** LIKENESS_CACHE_MAX_BYTES (bytes, or with a K/M/G/T suffix, powers of 1024); default 32 GiB. */
export function cacheMaxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LIKENESS_CACHE_MAX_BYTES;
  if (raw === undefined || raw.trim() === '') return DEFAULT_MAX_BYTES;
  return parseByteSize(raw, 'LIKENESS_CACHE_MAX_BYTES');
}

/** '68719476736', '64G', '512M', '1.5T' → bytes. */
export function parseByteSize(raw: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$/i.exec(raw);
  if (!m) throw new Error(`${what}=${JSON.stringify(raw)} is not a size: give bytes, or a number with K, M, G or T (e.g. 64G)`);
  const unit = (m[2] ?? 'B')[0]!.toUpperCase();
  const power = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit as 'B'] ?? 0;
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/** Marks the entry in use by this process until the returned function is called (counted per process). */
export function holdEntry(dir: string): () => void {
  held.set(dir, (held.get(dir) ?? 0) + 1);
  holdFile(dir);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = (held.get(dir) ?? 1) - 1;
    if (n > 0) return void held.set(dir, n);
    held.delete(dir);
    rmSync(join(dir, `${HELD_PREFIX}${process.pid}`), { force: true });
  };
}

/** The `.held-<pid>` marker other processes see (written once the entry's directory exists). */
function holdFile(dir: string): void {
  if (!held.has(dir) || !existsSync(dir)) return;
  try {
    writeFileSync(join(dir, `${HELD_PREFIX}${process.pid}`), '');
  } catch {
    // evicted meanwhile by another process: the caller's open fails with its own message
  }
}

function touch(dir: string): void {
  const now = new Date();
  try {
    utimesSync(join(dir, KEY_FILE), now, now);
  } catch {
    // an entry from before key.json: its directory's time stands for it
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface CacheEntry {
  /** Directory name under the cache. */
  name: string;
  net: string;
  dtype: string;
  /** The weights identity from key.json (a fingerprint of the model's files, LoRA sets folded in). */
  weightsHash: string;
  bytes: number;
  lastUse: Date;
  /** In use by this or another living process. */
  inUse: boolean;
}

/** Bytes of a file, or of everything under a folder; 0 for what was removed meanwhile. */
export function treeBytes(path: string): number {
  try {
    const st = statSync(path);
    if (!st.isDirectory()) return st.size;
    return readdirSync(path).reduce((n, f) => n + treeBytes(join(path, f)), 0);
  } catch {
    return 0;
  }
}

/** The complete entries of a cache directory, least recently used first. */
export function listCacheEntries(cacheDir: string): CacheEntry[] {
  if (!existsSync(cacheDir)) return [];
  const out: CacheEntry[] = [];
  for (const d of readdirSync(cacheDir, { withFileTypes: true })) {
    if (!d.isDirectory() || d.name.startsWith('.')) continue;
    const dir = join(cacheDir, d.name);
    if (!existsSync(join(dir, MODEL_FILE))) continue;
    let bytes = 0;
    let inUse = held.has(dir);
    for (const f of readdirSync(dir)) {
      if (f.startsWith(HELD_PREFIX)) {
        const pid = Number(f.slice(HELD_PREFIX.length));
        if (Number.isInteger(pid) && alive(pid)) inUse = true;
        else rmSync(join(dir, f), { force: true }); // its process is gone
        continue;
      }
      if (f.startsWith(PACKED_TMP_PREFIX)) {
        const pid = Number(f.slice(PACKED_TMP_PREFIX.length).split('-')[0]);
        if (!(Number.isInteger(pid) && alive(pid))) {
          rmSync(join(dir, f), { recursive: true, force: true }); // a packed copy its writer never finished
          continue;
        }
      }
      bytes += treeBytes(join(dir, f)); // the model, its data, ORT's packed copies (packed-copy.ts)
    }
    let key: Record<string, unknown> = {};
    let lastUse: Date;
    try {
      key = JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')) as Record<string, unknown>;
      lastUse = statSync(join(dir, KEY_FILE)).mtime;
    } catch {
      lastUse = statSync(dir).mtime;
    }
    const str = (v: unknown): string => (typeof v === 'string' ? v : '?');
    out.push({ name: d.name, net: str(key.net), dtype: str(key.dtype), weightsHash: str(key.weightsHash), bytes, lastUse, inUse });
  }
  return out.sort((a, b) => a.lastUse.getTime() - b.lastUse.getTime());
}

/**
 * Evicts least recently used entries not in use until the cache holds at most `maxBytes`; also
 * clears abandoned temporaries. Returns what was removed. An entry is renamed away before it is
 * deleted, so a reader never sees half of one.
 */
export async function pruneCache(cacheDir: string, options: { maxBytes?: number } = {}): Promise<CacheEntry[]> {
  const maxBytes = options.maxBytes ?? cacheMaxBytes();
  if (!existsSync(cacheDir)) return [];
  await removeStaleTemps(cacheDir);
  const entries = listCacheEntries(cacheDir);
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const removed: CacheEntry[] = [];
  for (const e of entries) {
    if (total <= maxBytes) break;
    if (e.inUse) continue;
    const doomed = join(cacheDir, `.tmp-evict-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await rename(join(cacheDir, e.name), doomed);
    } catch {
      continue; // raced with another pruner
    }
    await rm(doomed, { recursive: true, force: true });
    total -= e.bytes;
    removed.push(e);
  }
  return removed;
}

async function compile(
  cacheDir: string,
  dir: string,
  key: CacheKey,
  build: () => ModelDef | Promise<ModelDef>,
  writeOptions: WriteOptions,
): Promise<{ hit: boolean }> {
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
        return { hit: false };
      }
      throw e;
    }
    return { hit: false };
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
