/**
 * The one way Likeness downloads a URL it was given by a stranger (inputImageUrl, later LoRA URLs).
 *
 * Each hop goes through connect.ts (scheme, credentials and address checks, connection pinned to
 * the checked address); redirects are followed here by hand so every hop is checked again. Size is
 * enforced twice: Content-Length up front, and bytes counted while streaming, since a server may
 * omit or lie about the length.
 */
import type { IncomingMessage } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { AllowList } from './address.js';
import {
  FILE_DOWNLOAD_POLICY,
  IMAGE_FETCH_POLICY,
  checkUrl,
  flatHeaders,
  networkError,
  requestOnce,
  startDeadline,
  systemResolver,
  type FetchPolicy,
  type Resolver,
} from './connect.js';
import { FetchError, displayUrl } from './fetch-error.js';

export { FetchError, displayUrl } from './fetch-error.js';
export { FILE_DOWNLOAD_POLICY, IMAGE_FETCH_POLICY, type FetchPolicy, type Resolver } from './connect.js';

/** What image inputs may be served as; the bytes are checked by magic number afterwards anyway. */
export const IMAGE_CONTENT_TYPES: readonly string[] = ['image/', 'application/octet-stream', 'binary/octet-stream'];

export interface FetchOptions extends Partial<FetchPolicy> {
  signal?: AbortSignal;
  /** Accepted content types: exact ("image/png") or prefixes ending in "/" ("image/"). */
  accept?: readonly string[];
  onProgress?(bytes: number, total?: number): void;
  /** How messages name the URL, e.g. "inputImageUrl". */
  label?: string;
  /** DNS resolution; the system resolver unless a test or deployment supplies one. */
  resolve?: Resolver;
}

export interface FetchResult {
  bytes: Buffer;
  contentType: string;
  finalUrl: string;
  headers: Record<string, string>;
  status: number;
}

export interface DownloadOptions extends FetchOptions {
  /** Conditional request: a 304 answer is reported as `notModified` and the file is left alone. */
  ifNoneMatch?: string;
  ifModifiedSince?: string | Date;
}

export type DownloadResult =
  | { notModified: true; status: 304; finalUrl: string; headers: Record<string, string> }
  | {
      notModified: false;
      status: number;
      finalUrl: string;
      headers: Record<string, string>;
      contentType: string;
      /** Bytes written (after content decoding). */
      size: number;
      sha256: string;
      etag?: string;
      lastModified?: string;
    };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'Likeness (+self-hosted; fetches user-supplied URLs)';

interface Opened {
  res: IncomingMessage;
  url: URL;
  subject: string;
  policy: FetchPolicy;
  /** Body bytes received so far (decoded), for the minimum-rate watch. */
  received: number;
}

/** Cuts the body off with url_too_slow when its average rate falls below the policy's minimum. */
function watchRate(o: Opened): () => void {
  const min = o.policy.minBytesPerSecond ?? 0;
  if (!(min > 0)) return () => undefined;
  const grace = o.policy.slowGraceMs ?? 0;
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Date.now() - start;
    if (elapsed < grace || o.received >= (min * elapsed) / 1000) return;
    const rate = Math.round(o.received / (elapsed / 1000));
    o.res.destroy(new FetchError('url_too_slow',
      `${o.subject} arrived at ${formatBytes(rate)}/s over ${Math.round(elapsed / 1000)} s, below the ${formatBytes(min)}/s minimum; host the file somewhere faster`,
      { url: displayUrl(o.url) }));
  }, Math.max(50, Math.min(1000, grace / 4 || 1000)));
  timer.unref();
  return () => clearInterval(timer);
}

/** Fetches a URL into memory. Throws FetchError for every failure. */
export async function guardedFetch(url: string, opts: FetchOptions = {}): Promise<FetchResult> {
  return withDeadline(url, opts, IMAGE_FETCH_POLICY, {}, async (o) => {
    if (o.res.statusCode === 304) throw statusError(o);
    const { contentType, length } = checkHead(o, opts.accept);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of decoded(o)) {
      received = count(o, received, (chunk as Buffer).length);
      chunks.push(chunk as Buffer);
      opts.onProgress?.(received, length);
    }
    return { bytes: Buffer.concat(chunks, received), contentType, finalUrl: o.url.href, headers: flatHeaders(o.res), status: o.res.statusCode ?? 0 };
  });
}

/**
 * Streams a URL into a file (for large downloads). The body goes to a temporary file beside `path`
 * and is renamed into place only when complete, so `path` never holds a partial download.
 */
export async function guardedDownload(url: string, path: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const conditional: Record<string, string> = {};
  if (opts.ifNoneMatch !== undefined) conditional['if-none-match'] = opts.ifNoneMatch;
  if (opts.ifModifiedSince !== undefined) {
    conditional['if-modified-since'] = typeof opts.ifModifiedSince === 'string' ? opts.ifModifiedSince : opts.ifModifiedSince.toUTCString();
  }
  return withDeadline(url, opts, FILE_DOWNLOAD_POLICY, conditional, async (o) => {
    const headers = flatHeaders(o.res);
    if (o.res.statusCode === 304) {
      if (Object.keys(conditional).length === 0) throw statusError(o);
      o.res.resume();
      return { notModified: true, status: 304, finalUrl: o.url.href, headers };
    }
    const { contentType, length } = checkHead(o, opts.accept);
    const part = `${path}.${randomBytes(6).toString('hex')}.part`;
    const hash = createHash('sha256');
    const file = createWriteStream(part, { flags: 'wx' });
    // Without a listener a disk error (ENOSPC, a missing folder) would crash the process; instead it
    // stops the download, and the loop below sees it.
    let writeFailure: FetchError | undefined;
    file.on('error', (err) => {
      writeFailure ??= writeError(o, err);
      o.res.destroy(writeFailure);
    });
    let received = 0;
    try {
      for await (const chunk of decoded(o)) {
        received = count(o, received, (chunk as Buffer).length);
        hash.update(chunk as Buffer);
        if (!file.write(chunk)) await waitDrain(file);
        opts.onProgress?.(received, length);
      }
      file.end();
      await finished(file);
      await rename(part, path).catch((err: unknown) => {
        throw writeError(o, err);
      });
    } catch (err) {
      // Wait for the close: removing the file while its open() is still in flight could leave it.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()).destroy());
      await rm(part, { force: true });
      throw writeFailure ?? err;
    }
    return {
      notModified: false,
      status: o.res.statusCode ?? 0,
      finalUrl: o.url.href,
      headers,
      contentType,
      size: received,
      sha256: hash.digest('hex'),
      ...(headers.etag !== undefined ? { etag: headers.etag } : {}),
      ...(headers['last-modified'] !== undefined ? { lastModified: headers['last-modified'] } : {}),
    };
  });
}

function waitDrain(file: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      file.off('error', onError);
      resolve();
    };
    const onError = (err: unknown): void => {
      file.off('drain', onDrain);
      reject(err);
    };
    file.once('drain', onDrain);
    file.once('error', onError);
  });
}

function writeError(o: Opened, err: unknown): FetchError {
  const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
  return new FetchError('download_write', `${o.subject} could not be saved on this server (${why})`, { url: displayUrl(o.url), cause: err });
}

/**
 * Runs `body` on the final (non-redirect) response under the whole-fetch deadline, and makes sure
 * the response is released and every failure is a FetchError.
 */
async function withDeadline<T>(
  raw: string,
  opts: FetchOptions,
  defaults: Readonly<FetchPolicy>,
  extraHeaders: Record<string, string>,
  body: (o: Opened) => Promise<T>,
): Promise<T> {
  const policy: FetchPolicy = {
    maxBytes: opts.maxBytes ?? defaults.maxBytes,
    timeoutMs: opts.timeoutMs ?? defaults.timeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs ?? defaults.idleTimeoutMs ?? opts.timeoutMs ?? defaults.timeoutMs,
    maxRedirects: opts.maxRedirects ?? defaults.maxRedirects,
    allow: opts.allow ?? [],
    minBytesPerSecond: opts.minBytesPerSecond ?? defaults.minBytesPerSecond ?? 0,
    slowGraceMs: opts.slowGraceMs ?? defaults.slowGraceMs ?? 0,
  };
  const label = opts.label ?? 'URL';
  const deadline = startDeadline(policy.timeoutMs, opts.signal, `${label} ${displayUrl(raw)}`, raw);
  let opened: Opened | undefined;
  try {
    opened = await follow(raw, policy, label, { ...extraHeaders, accept: acceptHeader(opts.accept) }, opts.resolve ?? systemResolver, deadline.signal);
    const stopWatch = watchRate(opened);
    try {
      return await body(opened);
    } finally {
      stopWatch();
    }
  } catch (err) {
    opened?.res.destroy();
    // A body read cut short by the deadline surfaces as a stream error; report the real reason.
    if (deadline.signal.aborted) throw deadline.signal.reason as FetchError;
    if (err instanceof FetchError) throw err;
    if (opened !== undefined) throw networkError(err, opened.url, opened.subject);
    throw new FetchError('url_network', `${label} ${displayUrl(raw)}: ${String(err)}`, { url: displayUrl(raw), cause: err });
  } finally {
    deadline.dispose();
  }
}

async function follow(
  raw: string,
  policy: FetchPolicy,
  label: string,
  headers: Record<string, string>,
  resolve: Resolver,
  signal: AbortSignal,
): Promise<Opened> {
  const allow = new AllowList(policy.allow);
  const first = `${label} ${displayUrl(raw)}`;
  let url = checkUrl(raw, first);
  let subject = first;
  const seen = new Set([url.href]);
  for (let hop = 0; ; hop++) {
    const res = await requestOnce(url, {
      method: 'GET',
      headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers },
      allow,
      resolve,
      signal,
      idleTimeoutMs: policy.idleTimeoutMs ?? policy.timeoutMs,
      subject,
    });
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return { res, url, subject, policy, received: 0 };
    // Destroy rather than drain: a redirect's body is unused, and could be endless.
    res.destroy();
    if (hop >= policy.maxRedirects) {
      throw new FetchError('url_redirects', `${first} redirected more than ${policy.maxRedirects} times; give the final URL instead`, {
        url: displayUrl(url),
      });
    }
    const next = checkUrl(location, `${first} redirected to ${displayUrl(location)}, which`, url);
    subject = `${first} (redirected to ${displayUrl(next)})`;
    if (seen.has(next.href)) {
      throw new FetchError('url_redirects', `${first} redirects in a loop (back to ${displayUrl(next)})`, { url: displayUrl(next) });
    }
    seen.add(next.href);
    url = next;
  }
}

function acceptHeader(accept: readonly string[] | undefined): string {
  if (accept === undefined || accept.length === 0) return '*/*';
  return accept.map((a) => (a.endsWith('/') ? `${a}*` : a)).join(', ');
}

function mediaType(value: string | undefined): string {
  return (value ?? 'application/octet-stream').split(';')[0].trim().toLowerCase();
}

/** Status, content type and declared length, checked before any body byte is read. */
function checkHead(o: Opened, accept: readonly string[] | undefined): { contentType: string; length: number | undefined } {
  const status = o.res.statusCode ?? 0;
  if (status < 200 || status > 299) throw statusError(o);
  const contentType = mediaType(o.res.headers['content-type']);
  if (accept !== undefined && accept.length > 0 && !accept.some((a) => (a.endsWith('/') ? contentType.startsWith(a.toLowerCase()) : contentType === a.toLowerCase()))) {
    const hint = contentType === 'text/html' ? ': it is a web page. Link to the file itself, not to a page that shows it' : '';
    throw new FetchError('url_content_type', `${o.subject} has content type ${contentType}, expected ${accept.join(' or ')}${hint}`, {
      url: displayUrl(o.url),
    });
  }
  const declared = o.res.headers['content-length'];
  const length = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
  if (length !== undefined && !isEncoded(o.res) && length > o.policy.maxBytes) {
    throw tooLarge(o, `is ${formatBytes(length)}`);
  }
  return { contentType, length };
}

function statusError(o: Opened): FetchError {
  const status = o.res.statusCode ?? 0;
  const text = o.res.statusMessage ? ` ${o.res.statusMessage}` : '';
  const advice =
    status === 401 || status === 403
      ? 'the file is not publicly readable; share it publicly or use a presigned URL'
      : status === 404 || status === 410
        ? 'check that the URL is right and the file still exists'
        : status >= 500
          ? 'the server failed; try again later'
          : 'Likeness needs a 200 answer with the file';
  return new FetchError('url_status', `${o.subject} answered HTTP ${status}${text}; ${advice}`, { url: displayUrl(o.url), status });
}

function tooLarge(o: Opened, what: string): FetchError {
  return new FetchError('url_too_large', `${o.subject} ${what}, over the ${formatBytes(o.policy.maxBytes)} limit; use a smaller file`, {
    url: displayUrl(o.url),
  });
}

function count(o: Opened, received: number, more: number): number {
  const total = received + more;
  if (total > o.policy.maxBytes) throw tooLarge(o, 'is larger');
  o.received = total;
  return total;
}

function isEncoded(res: IncomingMessage): boolean {
  const enc = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  return enc !== '' && enc !== 'identity';
}

/** The body with any content encoding undone; limits count decoded bytes (a gzip bomb is still big). */
function decoded(o: Opened): Readable {
  if (!isEncoded(o.res)) return o.res;
  const enc = (o.res.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder =
    enc === 'gzip' || enc === 'x-gzip' ? createGunzip() : enc === 'deflate' ? createInflate() : enc === 'br' ? createBrotliDecompress() : undefined;
  if (decoder === undefined) {
    throw new FetchError('url_content_type', `${o.subject} uses the unsupported content encoding ${enc}`, { url: displayUrl(o.url) });
  }
  o.res.on('error', (err) => decoder.destroy(err));
  return o.res.pipe(decoder);
}

/** 1.2 MB, 340 KB, 12 bytes: sizes in messages. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KB`;
  return `${n} bytes`;
}
