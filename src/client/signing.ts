// Wiro's request signing (wiro-api.md §a.2): x-signature = hex(HMAC-SHA256(key = API key, msg = API secret + nonce)).
import { createHmac } from 'node:crypto';

export function signature(apiKey: string, apiSecret: string, nonce: string): string {
  return createHmac('sha256', apiKey).update(apiSecret + nonce).digest('hex');
}

/**
 * Nonces are the clock in milliseconds (a timestamp, as Likeness and Wiro read them), strictly increasing
 * within the process: requests in the same millisecond (or after the clock steps back) take the next
 * millisecond, so none reuses one. A burst runs ahead of the clock by one millisecond a request, far
 * inside the server's freshness window.
 */
export class NonceSource {
  private last = 0;

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    const candidate = this.now();
    this.last = candidate > this.last ? candidate : this.last + 1;
    return String(this.last);
  }
}

/** One source per process, shared by every client, so two clients with the same key never collide. */
const shared = new NonceSource();

export function authHeaders(apiKey: string, apiSecret: string | undefined, nonces: NonceSource = shared): Record<string, string> {
  if (!apiSecret) return { 'x-api-key': apiKey }; // an API-key-only project
  const nonce = nonces.next();
  return { 'x-api-key': apiKey, 'x-nonce': nonce, 'x-signature': signature(apiKey, apiSecret, nonce) };
}
