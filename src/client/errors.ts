// What a client call throws: the API's own refusal (HTTP status plus Wiro's {code, message}), or a wait
// that ran out of time.
import type { WiroErrorItem } from './types.js';

export class ApiError extends Error {
  /** Wiro's code of the first error: 0 general/validation, 1 not found, 96 concurrency, 97 balance… */
  readonly code: number;

  constructor(
    /** The HTTP status (200 for Wiro's `result:false` answers, 401 for auth, 429 for rate limits…). */
    readonly httpStatus: number,
    readonly errors: WiroErrorItem[],
    /** The endpoint that answered, e.g. "/v1/Task/Detail". */
    readonly endpoint: string,
    /** From a Retry-After header, when the server sent one. */
    readonly retryAfterMs?: number,
  ) {
    const first = errors[0] ?? { code: 0, message: `HTTP ${httpStatus}` };
    super(`${endpoint}: ${errors.map((e) => e.message).join('; ') || first.message} (HTTP ${httpStatus}, code ${first.code})`);
    this.name = 'ApiError';
    this.code = first.code;
  }
}

export class WaitTimeoutError extends Error {
  constructor(readonly task: string, readonly timeoutMs: number) {
    super(`task ${task} did not finish within ${timeoutMs} ms (it keeps running on the server)`);
    this.name = 'WaitTimeoutError';
  }
}

/** Reads `{code, message}` items from a parsed body; anything else becomes one item with `fallback`. */
export function errorItems(body: unknown, fallback: string): WiroErrorItem[] {
  const errors = (body as { errors?: unknown } | null)?.errors;
  if (Array.isArray(errors)) {
    const items = errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ({ code: Number(e.code ?? 0) || 0, message: String(e.message ?? '') }));
    if (items.length) return items;
  }
  return [{ code: 0, message: fallback }];
}
