// One signed POST, with the retry policy of Wiro's own SDKs (wiro-api.md §a.3, §a.4): Run is never
// retried (a retry could queue duplicate billable work); read-like calls are retried on 408/429/5xx and
// on connection failures, with exponential backoff that honours Retry-After; every attempt is signed anew.
import { ApiError, errorItems } from './errors.js';
import { authHeaders } from './signing.js';

/** never: Run. refused: only when the server said it did nothing (429) — Kill, Cancel. read: reads. */
export type RetryPolicy = 'never' | 'refused' | 'read';

export interface TransportOptions {
  baseUrl: string;
  apiKey: string;
  apiSecret?: string;
  fetch: typeof globalThis.fetch;
  /** Retries after the first attempt (default 4). */
  maxRetries: number;
  /** First backoff, doubled each retry with jitter (default 250 ms). */
  retryBaseMs: number;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const MAX_BACKOFF_MS = 30_000;

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class Transport {
  constructor(readonly opts: TransportOptions) {}

  /** POSTs to `endpoint` ("/v1/Task/Detail"); answers the parsed body of a `result: true` response. */
  async post<T>(endpoint: string, body: Record<string, unknown> | FormData, policy: RetryPolicy, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.opts.fetch(this.opts.baseUrl + endpoint, {
          method: 'POST',
          // FormData sets its own multipart content type with the boundary.
          headers: body instanceof FormData ? authHeaders(this.opts.apiKey, this.opts.apiSecret) : { 'content-type': 'application/json', ...authHeaders(this.opts.apiKey, this.opts.apiSecret) },
          body: body instanceof FormData ? body : JSON.stringify(body),
          signal,
        });
      } catch (err) {
        // The request may or may not have reached the server: only reads are safe to send again.
        if (signal?.aborted || policy !== 'read' || attempt >= this.opts.maxRetries) throw err;
        await sleep(this.backoff(attempt), signal);
        continue;
      }
      const parsed = await readJson(res);
      if (res.ok && parsed.ok && (parsed.value as { result?: unknown }).result === true) return parsed.value as T;

      const wait = retryAfterMs(res.headers.get('retry-after'));
      const retryable = policy === 'read' ? RETRYABLE_STATUS.has(res.status) : policy === 'refused' && res.status === 429;
      if (retryable && attempt < this.opts.maxRetries) {
        await sleep(Math.min(wait ?? this.backoff(attempt), MAX_BACKOFF_MS * 2), signal);
        continue;
      }
      const fallback = parsed.ok ? `HTTP ${res.status} with result:false and no error message` : `HTTP ${res.status}, not a JSON answer: ${parsed.text.slice(0, 200)}`;
      throw new ApiError(res.status, errorItems(parsed.ok ? parsed.value : null, fallback), endpoint, wait);
    }
  }

  /** GETs a public URL (an output file) without credentials, retrying like a read. */
  async get(url: string, signal?: AbortSignal): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.opts.fetch(url, { signal });
      } catch (err) {
        if (signal?.aborted || attempt >= this.opts.maxRetries) throw err;
        await sleep(this.backoff(attempt), signal);
        continue;
      }
      if (res.ok) return res;
      const wait = retryAfterMs(res.headers.get('retry-after'));
      if (RETRYABLE_STATUS.has(res.status) && attempt < this.opts.maxRetries) {
        await res.body?.cancel();
        await sleep(Math.min(wait ?? this.backoff(attempt), MAX_BACKOFF_MS * 2), signal);
        continue;
      }
      const parsed = await readJson(res);
      throw new ApiError(res.status, errorItems(parsed.ok ? parsed.value : null, `GET ${url} answered HTTP ${res.status}`), url, wait);
    }
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.opts.retryBaseMs * 2 ** attempt, MAX_BACKOFF_MS);
    return base / 2 + Math.random() * (base / 2);
  }
}

async function readJson(res: Response): Promise<{ ok: true; value: unknown } | { ok: false; text: string }> {
  const text = await res.text();
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? { ok: true, value } : { ok: false, text };
  } catch {
    return { ok: false, text };
  }
}
