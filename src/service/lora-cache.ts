/**
 * LoRAs given by URL (selectedLoraModelPrivateUrl): fetched through the guarded fetcher only, checked
 * to be a weight file before anything reads it, and kept under $LIKENESS_HOME/cache/loras:
 *
 *   <sha256>.safetensors   one file per distinct content (two URLs serving the same bytes share it)
 *   <sha256>.pt            a torch pickle, only when the operator allows pickles
 *   index.json             URL → {sha256, etag, lastModified}; content → {size, format, lastUsed}
 *
 * A URL fetched again is asked for conditionally (If-None-Match / If-Modified-Since): a 304 serves the
 * cached file without a second download. A server that sends neither validator is downloaded again
 * (same bytes → same file). The total size is bounded: least recently used files go first, never one
 * a running task holds (fetch() pins the file until release()).
 *
 * Share links are turned into the file itself: Google Drive (file/d/ID/view, open?id=ID, uc?id=ID),
 * S3 (s3://bucket/key; virtual-host and path-style https URLs are already direct), Hugging Face
 * (/blob/ → /resolve/) and Dropbox (dl=0 → dl=1).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../engine/errors.js';
import { readFully } from '../engine/formats/file-io.js';
import { readLora, type LoraFile, type LoraTargets } from '../engine/formats/lora.js';
import { SafetensorsFile } from '../engine/formats/safetensors.js';
import { TorchCheckpoint } from '../engine/formats/torch-pickle.js';
import { sniffWeightsFormat } from '../engine/formats/weights.js';
import { FetchError, displayUrl, guardedDownload, type Resolver } from '../net/index.js';

export const DEFAULT_MAX_LORA_BYTES = 2 * 1024 ** 3;
export const DEFAULT_LORA_CACHE_BYTES = 20 * 1024 ** 3;

export type CachedFormat = 'safetensors' | 'torch-zip';

export interface LoraCacheOptions {
  /** $LIKENESS_HOME/cache/loras */
  dir: string;
  /** Largest LoRA file accepted (default 2 GB). */
  maxFileBytes?: number;
  /** Bound on all cached files together (default 20 GB). */
  maxTotalBytes?: number;
  /** Non-public addresses the fetcher may reach (LIKENESS_FETCH_ALLOW). */
  allow?: readonly string[];
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** Operator's choice: accept torch pickles (.bin/.pt/.ckpt), read later only by the safe unpickler. */
  allowPickle?: boolean;
  /** DNS, for tests. */
  resolve?: Resolver;
  now?: () => number;
}

export interface FetchLoraOptions {
  /** Bytes so far and the announced total: report as task_preprocess_* progress. */
  onProgress?(bytes: number, total?: number): void;
  signal?: AbortSignal;
  /** How messages name the URL; default "selectedLoraModelPrivateUrl". */
  label?: string;
}

export interface CachedLora {
  path: string;
  sha256: string;
  size: number;
  format: CachedFormat;
  /** Served from the cache after a 304: nothing was downloaded. */
  fromCache: boolean;
  /** The URL actually fetched (a share link resolved). */
  directUrl: string;
  /**
   * Set when a warm() for a queued task (the worker's prefetch) got the file moments ago, so this fetch
   * asked nothing: "downloaded" it then, or "checked" that the cached copy was current.
   */
  prefetched?: 'downloaded' | 'checked';
  /** Lets the file be evicted again; call when the task is done with it. */
  release(): void;
}

interface UrlEntry { sha256: string; etag?: string; lastModified?: string; checkedAt: number }
interface BlobEntry { size: number; format: CachedFormat; lastUsed: number }
interface Index { version: 1; urls: Record<string, UrlEntry>; blobs: Record<string, BlobEntry> }

const EXT: Record<CachedFormat, string> = { safetensors: 'safetensors', 'torch-zip': 'pt' };

/**
 * How long a warm() stands in for the server's answer: the next fetch of that URL within it uses the
 * file without asking again (once), as if its task had started when the prefetch ran.
 */
export const WARM_FRESH_MS = 15 * 60_000;

interface Warmed { at: number; sha256: string; directUrl: string; downloaded: boolean }

/** A share link as the URL of the file itself; other URLs unchanged. Throws FetchError for unusable links. */
export function resolveLoraUrl(raw: string, label = 'selectedLoraModelPrivateUrl'): string {
  const text = raw.trim();
  const s3 = /^s3:\/\/([^/?#]+)\/([^?#]+)$/i.exec(text);
  if (s3) {
    const [bucket, key] = [s3[1]!.toLowerCase(), s3[2]!.split('/').map(encodeURIComponent).join('/')];
    return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket) ? `https://${bucket}.s3.amazonaws.com/${key}` : `https://s3.amazonaws.com/${bucket}/${key}`;
  }
  if (/^s3:/i.test(text)) throw new FetchError('url_invalid', `${label} ${displayUrl(text)} names no object: use s3://bucket/key`, { url: displayUrl(text) });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text; // the fetcher explains what is wrong with it
  }
  const host = url.hostname.toLowerCase();
  if (host === 'drive.google.com' || host === 'docs.google.com') {
    if (/^\/drive\/(u\/\d+\/)?folders\//.test(url.pathname)) {
      throw new FetchError('url_invalid', `${label} ${displayUrl(url)} is a Google Drive folder; share the LoRA file itself`, { url: displayUrl(url) });
    }
    const id = /\/file\/d\/([A-Za-z0-9_-]+)/.exec(url.pathname)?.[1] ?? url.searchParams.get('id');
    if (id && /^[A-Za-z0-9_-]+$/.test(id)) return `https://drive.usercontent.google.com/download?id=${id}&export=download&confirm=t`;
  }
  if (host === 'huggingface.co' || host === 'www.huggingface.co') {
    url.pathname = url.pathname.replace(/^(\/[^/]+\/[^/]+)\/blob\//, '$1/resolve/');
    return url.href;
  }
  if ((host === 'www.dropbox.com' || host === 'dropbox.com') && url.searchParams.get('dl') === '0') {
    url.searchParams.set('dl', '1');
    return url.href;
  }
  return url.href;
}

/**
 * Checks a downloaded file is a weight file we may read, before anything parses it for real:
 * a safetensors header that holds together, or (when allowed) a torch zip the safe unpickler opens.
 */
export function validateLoraFile(path: string, allowPickle: boolean, label: string): CachedFormat {
  const fd = openSync(path, 'r');
  let head = new Uint8Array(64);
  try {
    head = head.subarray(0, readFully(fd, head, 0));
  } finally {
    closeSync(fd);
  }
  const refuse = (why: string): never => {
    throw new EngineError('lora_not_safetensors', `${label} ${why}`);
  };
  switch (sniffWeightsFormat(head)) {
    case 'safetensors': {
      let count = 0;
      try {
        const file = SafetensorsFile.open(path);
        count = file.names().length;
        file.close();
      } catch (err) {
        refuse(`is not a valid .safetensors file (${(err as Error).message.replace(/^.*?: /, '')})`);
      }
      if (count === 0) refuse('is a .safetensors file with no tensors in it');
      return 'safetensors';
    }
    case 'torch-zip':
      if (!allowPickle) refuse('is a torch pickle (.bin/.pt/.ckpt), which this server does not load from URLs: convert it to .safetensors');
      try {
        TorchCheckpoint.open(path).close();
      } catch (err) {
        refuse(`is not a torch checkpoint Likeness can read safely (${(err as Error).message})`);
      }
      return 'torch-zip';
    case 'torch-legacy':
      return refuse('is a legacy torch pickle, which this server does not load: convert it to .safetensors');
    case 'unknown': {
      const start = new TextDecoder().decode(head).trimStart().toLowerCase();
      if (start.startsWith('<')) refuse('is a web page, not the LoRA file: link to the file itself (a Google Drive file must be shared with "anyone with the link")');
      return refuse('is not a .safetensors file');
    }
  }
}

export class LoraCache {
  private index: Index | undefined;
  private readonly pins = new Map<string, number>();
  private readonly queue = new Map<string, Promise<unknown>>();
  private readonly warmed = new Map<string, Warmed>();
  private readonly now: () => number;

  constructor(private readonly opts: LoraCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The LoRA at `url`, downloaded or served from the cache. Throws FetchError or EngineError. */
  fetch(url: string, options: FetchLoraOptions = {}): Promise<CachedLora> {
    return this.enqueue(url, options, false);
  }

  /**
   * Downloads (or revalidates) the LoRA at `url` for a task still queued, so that the task's own fetch,
   * within WARM_FRESH_MS, finds it here without a request. Nothing stays pinned; errors are the caller's
   * to ignore (the task's fetch tries again and reports them).
   */
  async warm(url: string, options: Pick<FetchLoraOptions, 'signal' | 'label'> = {}): Promise<void> {
    (await this.enqueue(url, options, true)).release();
  }

  private enqueue(url: string, options: FetchLoraOptions, warming: boolean): Promise<CachedLora> {
    const previous = this.queue.get(url) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.fetchOrWarm(url, options, warming));
    const tail = run.catch(() => undefined);
    this.queue.set(url, tail);
    void tail.then(() => { if (this.queue.get(url) === tail) this.queue.delete(url); });
    return run;
  }

  /** Bytes held by cached files. */
  async totalBytes(): Promise<number> {
    const index = await this.load();
    return Object.values(index.blobs).reduce((s, b) => s + b.size, 0);
  }

  private async fetchOrWarm(url: string, options: FetchLoraOptions, warming: boolean): Promise<CachedLora> {
    const warmed = this.warmed.get(url);
    this.warmed.delete(url);
    if (warmed && !warming && this.now() - warmed.at < WARM_FRESH_MS) {
      const index = await this.load();
      const blob = index.urls[url]?.sha256 === warmed.sha256 ? index.blobs[warmed.sha256] : undefined;
      if (blob && existsSync(this.blobPath(warmed.sha256, blob.format))) {
        const handed = await this.hand(warmed.sha256, true, warmed.directUrl);
        return { ...handed, prefetched: warmed.downloaded ? 'downloaded' : 'checked' };
      }
    }
    const got = await this.fetchNow(url, options);
    if (warming) this.warmed.set(url, { at: this.now(), sha256: got.sha256, directUrl: got.directUrl, downloaded: !got.fromCache });
    return got;
  }

  private async fetchNow(url: string, options: FetchLoraOptions): Promise<CachedLora> {
    const label = options.label ?? 'selectedLoraModelPrivateUrl';
    const directUrl = resolveLoraUrl(url, label);
    const index = await this.load();
    const known = index.urls[url];
    const blob = known ? index.blobs[known.sha256] : undefined;
    const cached = known && blob && existsSync(this.blobPath(known.sha256, blob.format)) ? known : undefined;
    const incoming = join(this.opts.dir, `incoming-${randomBytes(8).toString('hex')}`);
    const result = await guardedDownload(directUrl, incoming, {
      label,
      allow: [...(this.opts.allow ?? [])],
      maxBytes: this.opts.maxFileBytes ?? DEFAULT_MAX_LORA_BYTES,
      ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}),
      ...(this.opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.opts.idleTimeoutMs } : {}),
      ...(this.opts.resolve ? { resolve: this.opts.resolve } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(cached?.etag !== undefined ? { ifNoneMatch: cached.etag } : {}),
      ...(cached?.lastModified !== undefined ? { ifModifiedSince: cached.lastModified } : {}),
    });
    if (result.notModified) {
      if (!cached) throw new FetchError('url_status', `${label} ${displayUrl(directUrl)} answered 304 to a request that was not conditional`, { url: displayUrl(directUrl), status: 304 });
      const kept = this.index!.blobs[cached.sha256];
      // evicted by a concurrent fetch while we asked: fetch it again, unconditionally
      if (!kept || !existsSync(this.blobPath(cached.sha256, kept.format))) return this.fetchNow(url, options);
      cached.checkedAt = this.now();
      return this.hand(cached.sha256, true, directUrl);
    }
    let format: CachedFormat;
    try {
      format = validateLoraFile(incoming, this.opts.allowPickle === true, `${label} ${displayUrl(directUrl)}`);
    } catch (err) {
      await rm(incoming, { force: true });
      throw err;
    }
    const path = this.blobPath(result.sha256, format);
    if (existsSync(path)) await rm(incoming, { force: true });
    else await rename(incoming, path);
    index.blobs[result.sha256] = { size: result.size, format, lastUsed: this.now() };
    index.urls[url] = {
      sha256: result.sha256, checkedAt: this.now(),
      ...(result.etag !== undefined ? { etag: result.etag } : {}),
      ...(result.lastModified !== undefined ? { lastModified: result.lastModified } : {}),
    };
    return this.hand(result.sha256, false, directUrl);
  }

  /** Pins the file, evicts what the bound requires, saves the index, and hands the file out. */
  private async hand(sha256: string, fromCache: boolean, directUrl: string): Promise<CachedLora> {
    const blob = this.index!.blobs[sha256]!; // no await before the pin: a concurrent eviction must see it
    blob.lastUsed = this.now();
    this.pins.set(sha256, (this.pins.get(sha256) ?? 0) + 1);
    await this.evict();
    await this.save();
    let released = false;
    return {
      path: this.blobPath(sha256, blob.format), sha256, size: blob.size, format: blob.format, fromCache, directUrl,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.pins.get(sha256) ?? 1) - 1;
        if (n > 0) this.pins.set(sha256, n);
        else this.pins.delete(sha256);
      },
    };
  }

  private async evict(): Promise<void> {
    const index = this.index!;
    const limit = this.opts.maxTotalBytes ?? DEFAULT_LORA_CACHE_BYTES;
    let total = Object.values(index.blobs).reduce((s, b) => s + b.size, 0);
    const candidates = Object.entries(index.blobs).filter(([sha]) => !this.pins.has(sha)).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [sha, blob] of candidates) {
      if (total <= limit) break;
      await rm(this.blobPath(sha, blob.format), { force: true });
      delete index.blobs[sha];
      for (const [u, e] of Object.entries(index.urls)) if (e.sha256 === sha) delete index.urls[u];
      total -= blob.size;
    }
  }

  private blobPath(sha256: string, format: CachedFormat): string {
    return join(this.opts.dir, `${sha256}.${EXT[format]}`);
  }

  /** The index, read once; files the index lost track of are adopted, entries without files dropped. */
  private async load(): Promise<Index> {
    if (this.index) return this.index;
    await mkdir(this.opts.dir, { recursive: true });
    let index: Index = { version: 1, urls: {}, blobs: {} };
    try {
      const parsed = JSON.parse(readFileSync(join(this.opts.dir, 'index.json'), 'utf8')) as Index;
      if (parsed.version === 1 && parsed.urls && parsed.blobs) index = parsed;
    } catch {
      // absent or damaged: rebuilt from the files below
    }
    const files = await readdir(this.opts.dir);
    for (const name of files) {
      const m = /^([0-9a-f]{64})\.(safetensors|pt)$/.exec(name);
      if (m && !index.blobs[m[1]!]) {
        const st = await stat(join(this.opts.dir, name));
        index.blobs[m[1]!] = { size: st.size, format: m[2] === 'pt' ? 'torch-zip' : 'safetensors', lastUsed: st.mtimeMs };
      }
      if (name.startsWith('incoming-')) await rm(join(this.opts.dir, name), { force: true });
    }
    for (const [sha, blob] of Object.entries(index.blobs)) if (!files.includes(`${sha}.${EXT[blob.format]}`)) delete index.blobs[sha];
    for (const [u, e] of Object.entries(index.urls)) if (!index.blobs[e.sha256]) delete index.urls[u];
    this.index = index;
    return index;
  }

  private async save(): Promise<void> {
    const tmp = join(this.opts.dir, `index.json.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(tmp, JSON.stringify(this.index));
    await rename(tmp, join(this.opts.dir, 'index.json'));
  }
}

export interface UrlLora {
  lora: LoraFile;
  cached: CachedLora;
  /** Closes the LoRA file and unpins it. */
  close(): void;
}

/**
 * Fetches a LoRA URL through the cache and reads it against the model's targets (loraTargetsOfModel):
 * a LoRA for another base is refused here (EngineError lora_incompatible), before the model runs.
 * The content sha256 is the LoRA's id in compiled-graph cache keys.
 */
export async function loraFromUrl(cache: LoraCache, url: string, targets: LoraTargets, options: FetchLoraOptions & { allowPickle?: boolean } = {}): Promise<UrlLora> {
  const cached = await cache.fetch(url, options);
  try {
    const lora = readLora(cached.path, targets, {
      id: cached.sha256, allowPickle: options.allowPickle === true, label: `${options.label ?? 'selectedLoraModelPrivateUrl'} ${displayUrl(url)}`,
    });
    return { lora, cached, close: () => { lora.close(); cached.release(); } };
  } catch (err) {
    cached.release();
    throw err;
  }
}
