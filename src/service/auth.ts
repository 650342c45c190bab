// Wiro's request signing: x-signature = hex(HMAC-SHA256(key = API key, message = API secret + nonce)).
// API-key-only projects send x-api-key alone. A nonce reused by the same key within the replay window is
// refused (window 0 turns the check off for clients that reuse nonces).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, TaskStore } from './store/types.js';

export interface AuthFailure {
  ok: false;
  message: string;
}

export interface AuthSuccess {
  ok: true;
  key: ApiKeyRecord;
}

export function sign(apiKey: string, apiSecret: string, nonce: string): string {
  return createHmac('sha256', apiKey).update(apiSecret + nonce).digest('hex');
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

/** Remembers (key, nonce) pairs for `windowSeconds`, bounded in memory. */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  constructor(readonly windowSeconds: number, private readonly maxEntries = 200_000, private readonly now = Date.now) {}

  /** True the first time a pair is seen within the window; false for a replay. */
  claim(apiKey: string, nonce: string): boolean {
    if (this.windowSeconds <= 0) return true;
    const t = this.now();
    const id = `${apiKey}\u0000${nonce}`;
    const at = this.seen.get(id);
    if (at !== undefined && t - at < this.windowSeconds * 1000) return false;
    this.seen.delete(id);
    this.seen.set(id, t);
    if (this.seen.size > this.maxEntries) this.evict(t);
    return true;
  }

  private evict(t: number): void {
    for (const [id, at] of this.seen) {
      if (this.seen.size <= this.maxEntries * 0.9 && t - at < this.windowSeconds * 1000) break;
      this.seen.delete(id); // Map iterates oldest first
    }
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function authenticate(
  store: TaskStore,
  nonces: NonceCache,
  headers: Record<string, string | string[] | undefined>,
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
  if (!/^\d{1,20}$/.test(nonce)) return { ok: false, message: 'x-nonce must be an integer (a unix timestamp in seconds or milliseconds, or any random integer).' };
  const expected = sign(key.apiKey, key.apiSecret ?? '', nonce);
  if (!constantTimeEqualHex(signature.toLowerCase(), expected)) {
    return { ok: false, message: 'x-signature does not match: it must be hex HMAC-SHA256 of (API secret + nonce) keyed by the API key.' };
  }
  if (!nonces.claim(key.apiKey, nonce)) {
    return {
      ok: false,
      message: `x-nonce ${nonce} was already used with this API key in the last ${nonces.windowSeconds} s: send a new nonce (and its signature) with every request.`,
    };
  }
  return { ok: true, key };
}
