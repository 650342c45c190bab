/**
 * Delivers a task's final state to the callbackUrl a client gave (Wiro's webhook, see
 * wiro-api.md §a.6). The URL is a stranger's, so it goes through the same guarded connection as
 * every fetch. Delivery failures are returned as a record, never thrown: the caller stores the
 * record, and a failed delivery never changes the task.
 */
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AllowList } from './address.js';
import { checkUrl, requestOnce, startDeadline, systemResolver, type FetchPolicy, type Resolver } from './connect.js';
import { FetchError, displayUrl } from './fetch-error.js';

export interface CallbackOptions {
  /** Total tries, the first included. */
  attempts?: number;
  /** Wait before the 2nd, 3rd, … try; the last value repeats. */
  backoffMs?: readonly number[];
  /** timeoutMs (per try), idleTimeoutMs and allow are used; callbacks never follow redirects. */
  policy?: Partial<FetchPolicy>;
  signal?: AbortSignal;
  /** Adds `x-likeness-signature: sha256=<hex HMAC of the body>` (our extension, not Wiro's). */
  sign?: { secret: string };
  resolve?: Resolver;
  /** How messages name the URL. */
  label?: string;
  /** More request headers (the Standard Webhooks signature headers, for one). */
  headers?: Record<string, string>;
}

export interface CallbackDelivery {
  ok: boolean;
  attempts: number;
  /** HTTP status of the last answer, if any came. */
  lastStatus?: number;
  /** Why the last try failed, in words fit for the task record. */
  lastError?: string;
  /** Stable code of the last failure: a FetchError code, or 'callback_status' for a non-2xx answer. */
  lastErrorCode?: string;
  /** ISO 8601 time of the successful delivery. */
  deliveredAt?: string;
  /** Whether trying again later could succeed (false for a redirect, a refused address, a bad URL). */
  retryable: boolean;
}

export const CALLBACK_POLICY: Readonly<FetchPolicy> = Object.freeze({
  maxBytes: 64 * 1024,
  timeoutMs: 10_000,
  idleTimeoutMs: 10_000,
  maxRedirects: 0,
});

export const SIGNATURE_HEADER = 'x-likeness-signature';

/** The signature header's value for `body`; receivers recompute it over the raw body they got. */
export function signCallbackBody(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

type Outcome = { ok: true; status: number } | { ok: false; status?: number; code: string; error: string; retry: boolean };

/**
 * Standard Webhooks signature headers (standardwebhooks.com): webhook-signature is "v1," + base64 of
 * HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed by the base64-decoded part of a "whsec_…" secret.
 */
export function standardWebhookHeaders(secret: string, messageId: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  const signature = createHmac('sha256', key).update(`${messageId}.${timestampSeconds}.${body}`).digest('base64');
  return { 'webhook-id': messageId, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}

/** POSTs `payload` (an object as JSON, or a JSON text sent verbatim) to `url`, retrying with backoff; resolves with what happened. */
export async function deliverCallback(url: string, payload: object | string, opts: CallbackOptions = {}): Promise<CallbackDelivery> {
  const attempts = Math.max(1, opts.attempts ?? 3);
  const backoff = opts.backoffMs ?? [1000, 4000];
  const label = opts.label ?? 'callbackUrl';
  const body = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const headers: Record<string, string> = {
    ...opts.headers,
    'content-type': 'application/json',
    'content-length': String(body.length),
    'user-agent': 'Likeness-Callback',
  };
  if (opts.sign !== undefined) headers[SIGNATURE_HEADER] = signCallbackBody(body, opts.sign.secret);

  let last: Outcome | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) {
      const wait = backoff.length === 0 ? 0 : backoff[Math.min(attempt - 2, backoff.length - 1)];
      try {
        await sleep(wait, undefined, { signal: opts.signal });
      } catch {
        return record(false, attempt - 1, cancelled(last));
      }
    }
    last = await attemptOnce(url, body, headers, label, opts);
    if (last.ok) return { ok: true, attempts: attempt, lastStatus: last.status, deliveredAt: new Date().toISOString(), retryable: false };
    if (!last.retry || opts.signal?.aborted) return record(false, attempt, last);
  }
  return record(false, attempts, last);
}

function cancelled(last: Outcome | undefined): Outcome {
  return { ok: false, status: last?.ok === false ? last.status : undefined, code: 'url_aborted', error: 'callback delivery was cancelled', retry: false };
}

function record(ok: false, attempts: number, last: Outcome | undefined): CallbackDelivery {
  const out: CallbackDelivery = { ok, attempts, retryable: last !== undefined && !last.ok && last.retry };
  if (last !== undefined && !last.ok) {
    if (last.status !== undefined) out.lastStatus = last.status;
    out.lastError = last.error;
    out.lastErrorCode = last.code;
  }
  return out;
}

async function attemptOnce(url: string, body: Buffer, headers: Record<string, string>, label: string, opts: CallbackOptions): Promise<Outcome> {
  const policy = { ...CALLBACK_POLICY, ...opts.policy };
  const subject = `${label} ${displayUrl(url)}`;
  const deadline = startDeadline(policy.timeoutMs, opts.signal, subject, url);
  try {
    const target = checkUrl(url, subject);
    const res = await requestOnce(target, {
      method: 'POST',
      headers,
      body,
      allow: new AllowList(policy.allow),
      resolve: opts.resolve ?? systemResolver,
      signal: deadline.signal,
      idleTimeoutMs: policy.idleTimeoutMs ?? policy.timeoutMs,
      subject,
    });
    // The answer's body means nothing to us; drop it rather than let a receiver make us read.
    res.destroy();
    const status = res.statusCode ?? 0;
    if (status >= 200 && status <= 299) return { ok: true, status };
    if (status >= 300 && status <= 399) {
      const where = res.headers.location === undefined ? '' : ` to ${displayUrl(URL.canParse(res.headers.location, target.href) ? new URL(res.headers.location, target) : res.headers.location)}`;
      // Re-POSTing a task to wherever a redirect points is not something to do silently.
      return { ok: false, status, code: 'callback_status', retry: false, error: `${subject} answered HTTP ${status} (redirect${where}); callbacks do not follow redirects, give the final URL` };
    }
    return { ok: false, status, code: 'callback_status', retry: true, error: `${subject} answered HTTP ${status}; a callback receiver must answer 2xx` };
  } catch (err) {
    const error = deadline.signal.aborted ? (deadline.signal.reason as FetchError) : err;
    if (error instanceof FetchError) return { ok: false, code: error.code, error: error.message, retry: !error.permanent && error.code !== 'url_aborted' };
    return { ok: false, code: 'url_network', error: `${subject}: ${String(error)}`, retry: true };
  } finally {
    deadline.dispose();
  }
}
