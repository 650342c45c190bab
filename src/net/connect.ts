/**
 * One guarded HTTP exchange (no redirects): the building block of guardedFetch, guardedDownload and
 * deliverCallback.
 *
 * The address check lives inside the socket's `lookup`: the host is resolved once, every address
 * it resolves to is checked, and the socket connects to exactly those checked addresses. There is
 * no second resolution for a DNS-rebinding attacker to answer differently. IP-literal hosts skip
 * `lookup` in node, so they are checked before the request, and the connected peer is checked
 * again on 'connect' as a last line of defence.
 */
import http from 'node:http';
import https from 'node:https';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { AllowList, classifyAddress, describeKind } from './address.js';
import { FetchError, displayUrl } from './fetch-error.js';

/** Limits for one fetch, redirects included. Plain data, so it can come from configuration. */
export interface FetchPolicy {
  /** Largest body accepted, in bytes (after content decoding). */
  maxBytes: number;
  /** Whole fetch, all redirects and the body included. */
  timeoutMs: number;
  /** Longest silence from the server (connect, headers, between body chunks). */
  idleTimeoutMs?: number;
  maxRedirects: number;
  /**
   * Slowest average body rate accepted, in bytes per second, judged once `slowGraceMs` have passed since
   * the answer's headers: a server trickling a byte now and then is cut off instead of holding the worker.
   */
  minBytesPerSecond?: number;
  slowGraceMs?: number;
  /** Non-public CIDRs, IPs or hostnames this deployment may reach (LIKENESS_FETCH_ALLOW). */
  allow?: string[];
}

const MB = 1024 * 1024;

export const IMAGE_FETCH_POLICY: Readonly<FetchPolicy> = Object.freeze({
  maxBytes: 20 * MB,
  timeoutMs: 30_000,
  idleTimeoutMs: 15_000,
  maxRedirects: 5,
  minBytesPerSecond: 8 * 1024,
  slowGraceMs: 5000,
});

/** Large files (LoRA weights): generous size and time, but silence is still cut off. */
export const FILE_DOWNLOAD_POLICY: Readonly<FetchPolicy> = Object.freeze({
  maxBytes: 4 * 1024 * MB,
  timeoutMs: 30 * 60_000,
  idleTimeoutMs: 60_000,
  maxRedirects: 5,
  minBytesPerSecond: 64 * 1024,
  slowGraceMs: 10_000,
});

/** Resolves a hostname to all its addresses. Injectable so tests never touch real DNS. */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export interface HopOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: Buffer;
  allow: AllowList;
  resolve: Resolver;
  /** Aborted with a FetchError as its reason (total timeout or the caller's cancel). */
  signal: AbortSignal;
  idleTimeoutMs: number;
  /** How messages name the URL: "inputImageUrl https://…" or "… (redirected to …)". */
  subject: string;
}

/** Parses and vets a URL from a stranger; `base` resolves a redirect's relative Location. */
export function checkUrl(raw: string, subject: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw.trim(), base);
  } catch {
    throw new FetchError('url_invalid', `${subject} is not a valid URL; give an absolute http(s) URL such as https://example.com/face.jpg`, {
      url: displayUrl(raw),
    });
  }
  const shown = displayUrl(url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchError('url_scheme', `${subject} uses ${url.protocol.replace(/:$/, '')}:, but Likeness fetches only http and https URLs`, {
      url: shown,
    });
  }
  if (url.username !== '' || url.password !== '') {
    throw new FetchError(
      'url_credentials',
      `${subject} contains credentials (user:password@host); Likeness does not send credentials from URLs. Use a public or presigned URL instead`,
      { url: shown },
    );
  }
  if (url.hostname === '') throw new FetchError('url_invalid', `${subject} has no host`, { url: shown });
  return url;
}

/** A FetchError for an address the policy refuses. */
export function blockedAddress(subject: string, url: URL, ip: string): FetchError {
  const kind = classifyAddress(ip);
  return new FetchError(
    'url_blocked_address',
    `${subject} resolves to ${describeKind(kind)} (${ip}); Likeness only fetches public URLs. An operator can allow it with LIKENESS_FETCH_ALLOW`,
    { url: displayUrl(url), address: ip },
  );
}

function bareHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

function guardedLookup(url: URL, o: HopOptions): LookupFunction {
  return (hostname, options, callback) => {
    const vet = async (): Promise<LookupAddress[]> => {
      let addresses: LookupAddress[];
      try {
        addresses = await o.resolve(hostname);
      } catch (err) {
        throw networkError(err, url, o.subject);
      }
      // Every address must pass: a name answering [public, private] must not get a second chance.
      for (const a of addresses) if (!o.allow.permits(hostname, a.address)) throw blockedAddress(o.subject, url, a.address);
      const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
      if (wanted.length === 0) {
        throw new FetchError('url_dns', `${o.subject}: the host ${hostname} has no usable address`, { url: displayUrl(url) });
      }
      return wanted;
    };
    vet().then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0].address, addresses[0].family);
      },
      (err: FetchError) => callback(err as FetchError & NodeJS.ErrnoException, ''),
    );
  };
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'ENODATA', 'EAI_NONAME']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL']);

/** Maps node's network errors onto FetchError; FetchErrors pass through unchanged. */
export function networkError(err: unknown, url: URL, subject: string): FetchError {
  if (err instanceof FetchError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const shown = displayUrl(url);
  if (DNS_CODES.has(code)) {
    return new FetchError('url_dns', `${subject}: the host ${url.hostname} could not be resolved (${code}); check the URL`, { url: shown, cause: err });
  }
  if (CONNECT_CODES.has(code)) {
    return new FetchError('url_connect', `${subject}: could not connect to ${url.host} (${code})`, { url: shown, cause: err });
  }
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(code)) {
    return new FetchError('url_tls', `${subject}: the TLS certificate of ${url.host} was not accepted (${code})`, { url: shown, cause: err });
  }
  const why = code !== '' ? code : err instanceof Error ? err.message : String(err);
  return new FetchError('url_network', `${subject}: the connection to ${url.host} failed (${why})`, { url: shown, cause: err });
}

/**
 * Sends one request and resolves with the response once its headers arrive. Until the response is
 * closed, the signal, the idle timer and the peer check can still destroy it (the body reader then
 * sees the FetchError).
 */
export function requestOnce(url: URL, o: HopOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (o.signal.aborted) return reject(o.signal.reason as FetchError);
    const host = bareHost(url);
    if (isIP(host) !== 0 && !o.allow.permits(host, host)) return reject(blockedAddress(o.subject, url, host));

    let response: http.IncomingMessage | undefined;
    const fail = (err: unknown): void => {
      const error = networkError(err, url, o.subject);
      cleanup();
      req.destroy(error);
      response?.destroy(error);
      reject(error);
    };
    const onAbort = (): void => fail(o.signal.reason);
    const cleanup = (): void => o.signal.removeEventListener('abort', onAbort);

    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(url, {
      method: o.method,
      headers: o.headers,
      // A fresh connection per request: a pooled socket could have been opened without our lookup.
      agent: false,
      lookup: guardedLookup(url, o),
      timeout: o.idleTimeoutMs,
    });
    o.signal.addEventListener('abort', onAbort, { once: true });
    req.on('socket', (socket: Socket) => {
      socket.once('connect', () => {
        const peer = socket.remoteAddress;
        if (peer !== undefined && !o.allow.permits(host, peer)) fail(blockedAddress(o.subject, url, peer));
      });
    });
    req.on('timeout', () => {
      const seconds = Math.round(o.idleTimeoutMs / 100) / 10;
      fail(new FetchError('url_timeout', `${o.subject} sent nothing for ${seconds} s; try again later or use a faster host`, { url: displayUrl(url) }));
    });
    req.on('error', fail);
    req.on('close', cleanup);
    req.on('response', (res) => {
      response = res;
      res.on('close', cleanup);
      resolve(res);
    });
    req.end(o.body);
  });
}

/**
 * A signal that aborts with a FetchError when the whole-fetch timeout passes or the caller cancels.
 * `dispose` must be called when the fetch is over so the timer does not hold the process open.
 */
export function startDeadline(
  timeoutMs: number,
  outer: AbortSignal | undefined,
  subject: string,
  url: string,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const shown = displayUrl(url);
  const timer = setTimeout(() => {
    const seconds = Math.round(timeoutMs / 100) / 10;
    controller.abort(new FetchError('url_timeout', `${subject} did not finish downloading within ${seconds} s; use a faster host or a smaller file`, { url: shown }));
  }, timeoutMs);
  const onOuter = (): void => {
    controller.abort(new FetchError('url_aborted', `fetching ${subject} was cancelled`, { url: shown, cause: outer?.reason }));
  };
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

/** Response headers as a flat record (repeated headers joined as HTTP allows). */
export function flatHeaders(res: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
