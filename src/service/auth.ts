// Wiro's request signing: x-signature = hex(HMAC-SHA256(key = API key, message = API secret + nonce)).
// API-key-only projects send x-api-key alone. The nonce is a unix timestamp (seconds or milliseconds) that
// must lie within the freshness window. Everything here is a pure check of the headers — it never reads the
// body and remembers nothing — so it can run as early as the request's headers arrive. What a reused nonce
// means for calls that act (replay protection) is replay.ts's business, after the body is parsed.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, TaskStore } from './store/types.js';

export interface AuthFailure {
  ok: false;
  message: string;
}

export interface AuthSuccess {
  ok: true;
  key: ApiKeyRecord;
  /** The signed nonce and the time it names (unix ms); absent for API-key-only projects. */
  nonce?: { value: string; atMs: number };
}

export interface AuthOptions {
  /** ± seconds a nonce's timestamp may differ from the server's clock; 0 turns the freshness check off. */
  windowSeconds: number;
  now?: () => number;
}

export function sign(apiKey: string, apiSecret: string, nonce: string): string {
  return createHmac('sha256', apiKey).update(apiSecret + nonce).digest('hex');
}

/**
 * The hex digest in an x-signature header as people produce it: bare hex (either case), or an OpenSSL
 * line — `SHA2-256(stdin)= <hex>` from OpenSSL 3, `(stdin)= <hex>` from OpenSSL 1 — pasted whole.
 */
export function signatureHex(header: string): string | undefined {
  const m = /^\s*(?:[A-Za-z0-9-]*\s*\(stdin\)\s*=\s*)?([0-9A-Fa-f]{64})\s*$/.exec(header);
  return m ? m[1]!.toLowerCase() : undefined;
}

function constantTimeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  if (x.length !== y.length) {
    timingSafeEqual(x, x); // spend comparable time either way
    return false;
  }
  return timingSafeEqual(x, y);
}

/** Below this a nonce is read as unix seconds (1e11 s is the year 5138), from here up to 1e14 as milliseconds. */
const SECONDS_BELOW = 1e11;
const MILLISECONDS_BELOW = 1e14;

/** The unix time in ms a nonce names, or a message saying what a nonce must be. */
export function nonceTime(nonce: string): { atMs: number } | { error: string } {
  if (/^\d{1,15}$/.test(nonce)) {
    const n = Number(nonce);
    if (n >= 1e9 && n < SECONDS_BELOW) return { atMs: n * 1000 };
    if (n >= 1e12 && n < MILLISECONDS_BELOW) return { atMs: n };
  }
  return {
    error: `x-nonce "${nonce.slice(0, 40)}" is not a timestamp: send the current unix time in seconds (10 digits, \`date +%s\`) or milliseconds (13 digits, Date.now()), and sign it.`,
  };
}

/** Why a nonce's time is outside the window, or undefined when it is fresh. */
export function staleness(atMs: number, nowMs: number, windowSeconds: number): string | undefined {
  if (windowSeconds <= 0) return undefined;
  const skew = (atMs - nowMs) / 1000;
  if (skew < -windowSeconds) {
    return `x-nonce is ${Math.round(-skew)} s old; nonces are accepted for ${windowSeconds} s. Send the current time as the nonce (and check this machine's clock).`;
  }
  if (skew > windowSeconds) {
    return `x-nonce is ${Math.round(skew)} s in the future (at most ${windowSeconds} s is accepted): the client's clock is ahead of the server's, or the nonce is not a timestamp.`;
  }
  return undefined;
}

/** Checks a signature project's x-nonce and x-signature against the key: no I/O, no memory. */
export function verifySignature(
  key: Pick<ApiKeyRecord, 'apiKey' | 'apiSecret'>,
  nonce: string,
  signature: string,
  opts: AuthOptions,
): { ok: true; atMs: number } | AuthFailure {
  const time = nonceTime(nonce);
  if ('error' in time) return { ok: false, message: time.error };
  const hex = signatureHex(signature);
  const expected = sign(key.apiKey, key.apiSecret ?? '', nonce);
  if (!constantTimeEqualHex(hex ?? '', expected)) {
    return { ok: false, message: 'x-signature does not match: it must be hex HMAC-SHA256 of (API secret + nonce) keyed by the API key.' };
  }
  const stale = staleness(time.atMs, (opts.now ?? Date.now)(), opts.windowSeconds);
  if (stale) return { ok: false, message: stale };
  return { ok: true, atMs: time.atMs };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function authenticate(
  store: Pick<TaskStore, 'findKey'>,
  headers: Record<string, string | string[] | undefined>,
  opts: AuthOptions,
): Promise<AuthSuccess | AuthFailure> {
  const apiKey = header(headers, 'x-api-key');
  if (!apiKey) return { ok: false, message: 'x-api-key header is required. Create a key with `likeness keys create`.' };
  const key = await store.findKey(apiKey);
  if (!key || key.revokedAt !== null) return { ok: false, message: 'The API key is not valid (unknown or revoked).' };
  if (key.auth === 'apikey') return { ok: true, key };

  const nonce = header(headers, 'x-nonce');
  const signature = header(headers, 'x-signature');
  if (!nonce || !signature) {
    return { ok: false, message: 'Project requires signature authentication. x-signature and x-nonce headers are required.' };
  }
  const checked = verifySignature(key, nonce.trim(), signature, opts);
  if (!checked.ok) return checked;
  return { ok: true, key, nonce: { value: nonce.trim(), atMs: checked.atMs } };
}
