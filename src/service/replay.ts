// Replay protection for calls that act (Run, Kill, Cancel, InputOutputDelete, File/Upload, File/Delete), after
// the body is parsed. Authentication (auth.ts) has already checked the signature and that the nonce is a fresh
// timestamp; reads accept a reused nonce and never come here. For an acting call, (API key, nonce) is recorded
// in the store with a fingerprint of the request:
//   - the first request with that nonce acts, and its answer is recorded with it;
//   - the same request again (same key, nonce and body) inside the window gets the recorded answer and acts
//     no second time — a client retrying, or an attacker replaying a captured request;
//   - the nonce with another body is refused: a signature covers only secret + nonce, so a captured header set
//     must not sign anything else.
// Run's Idempotency-Key works the same way, per project, for a day. Records live in the database (durable across
// restarts, shared by every process on the store), one row per (scope, ref) so no tenant can displace another's,
// and are pruned once they can no longer match (their nonce has left the window).
import { createHash } from 'node:crypto';
import { ApiError, failure } from './http.js';
import type { ApiKeyRecord, TaskStore } from './store/types.js';

export interface Answer {
  status: number;
  body: unknown;
}

export interface ActingRequest {
  key: ApiKeyRecord;
  nonce?: { value: string; atMs: number } | undefined;
  /** Run's Idempotency-Key header, if any. */
  idempotencyKey?: string | undefined;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
const PENDING_WAIT_MS = 15_000;
const PENDING_POLL_MS = 25;
/** Longer than any acting call takes (Kill waits at most killWaitMs, 30 s by default). */
const ABANDONED_AFTER_MS = 120_000;
const PRUNE_EVERY_MS = 60_000;

/** A stable digest of a request: the route plus its body (object keys sorted) and any file bytes' digests. */
export function fingerprint(route: string, body: unknown, files: { field: string; bytes: Uint8Array }[] = []): string {
  const h = createHash('sha256');
  h.update(route).update('\0').update(canonical(body));
  for (const f of [...files].sort((a, b) => (a.field < b.field ? -1 : a.field > b.field ? 1 : 0))) {
    h.update('\0').update(f.field).update('\0').update(createHash('sha256').update(f.bytes).digest('hex'));
  }
  return h.digest('hex');
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/** Checks an Idempotency-Key header value; throws a 400 a client can act on when it is malformed. */
export function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const raw = headers['idempotency-key'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || v === '') return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(v)) throw new ApiError(0, 'Idempotency-Key must be 1 to 255 printable ASCII characters without spaces (a UUID is a good choice).', 400);
  return v;
}

export class ReplayGuard {
  private lastPrune = 0;

  constructor(
    private readonly store: TaskStore,
    private readonly windowSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs `act` at most once per (key, nonce) and per Idempotency-Key; a repeat gets the first answer.
   * An ApiError thrown by `act` is an answer like any other (recorded, replayed); any other error forgets the
   * claim so that a retry may act.
   */
  async once(req: ActingRequest, print: string, act: () => Promise<unknown>): Promise<Answer & { replayed: boolean }> {
    await this.maybePrune();
    const layers: { scope: string; ref: string; expiresAt: number; conflict: () => ApiError }[] = [];
    if (req.nonce && this.windowSeconds > 0) {
      const nonce = req.nonce.value;
      layers.push({
        scope: `key:${req.key.apiKey}`,
        ref: nonce,
        // The nonce is accepted while now ≤ its time + window; the record must outlive that.
        expiresAt: Math.max(req.nonce.atMs, this.now()) + this.windowSeconds * 1000 + 1000,
        conflict: () => new ApiError(0,
          `x-nonce ${nonce} was already used with this API key for a different request. Sign every new request with a new nonce (the current time in milliseconds, Date.now(), is unique enough; seconds nonces allow one acting call per second).`, 401),
      });
    }
    if (req.idempotencyKey) {
      const idem = req.idempotencyKey;
      layers.push({
        scope: `idem:${req.key.projectId}`,
        ref: idem,
        expiresAt: this.now() + IDEMPOTENCY_TTL_MS,
        conflict: () => new ApiError(0, `Idempotency-Key ${idem} was already used in this project for a different request. Use a new key for a new request.`, 422),
      });
    }
    return this.through(layers, print, act);
  }

  private async through(
    layers: { scope: string; ref: string; expiresAt: number; conflict: () => ApiError }[],
    print: string,
    act: () => Promise<unknown>,
  ): Promise<Answer & { replayed: boolean }> {
    const [layer, ...rest] = layers;
    if (!layer) return { ...(await answerOf(act)), replayed: false };
    const deadline = this.now() + PENDING_WAIT_MS;
    for (;;) {
      const claim = await this.store.claimReplay(layer.scope, layer.ref, print, layer.expiresAt);
      if (claim.claimed) {
        let answer: Answer & { replayed: boolean };
        try {
          answer = await this.through(rest, print, act);
        } catch (err) {
          await this.store.releaseReplay(layer.scope, layer.ref);
          throw err;
        }
        await this.store.completeReplay(layer.scope, layer.ref, answer.status, JSON.stringify(answer.body));
        return answer;
      }
      const { record } = claim;
      if (record.fingerprint !== print) throw layer.conflict();
      if (record.status !== null && record.response !== null) {
        return { status: record.status, body: JSON.parse(record.response) as unknown, replayed: true };
      }
      // The first request is still being handled: wait for its answer. A claim left pending far longer than any
      // request takes was left by a process that stopped mid-request; it is forgotten, so this one may act.
      if (this.now() - record.createdAt > ABANDONED_AFTER_MS) {
        await this.store.releaseReplay(layer.scope, layer.ref);
        continue;
      }
      if (this.now() > deadline) {
        throw new ApiError(0, 'The same request is still being handled; ask again in a moment.', 409);
      }
      await new Promise((r) => setTimeout(r, PENDING_POLL_MS));
    }
  }

  private async maybePrune(): Promise<void> {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.store.pruneReplay(now);
  }
}

async function answerOf(act: () => Promise<unknown>): Promise<Answer> {
  try {
    return { status: 200, body: await act() };
  } catch (err) {
    if (err instanceof ApiError) return { status: err.httpStatus, body: failure([{ code: err.code, message: err.message }]) };
    throw err;
  }
}

/** What a route needs to answer an acting call through the guard. */
export interface ActingContext {
  guard: ReplayGuard;
  request: ActingRequest;
}

/** Answers `reply` with the guarded answer (marking a replayed one with `x-likeness-replayed: true`). */
export async function answerOnce(
  reply: { code(n: number): { send(b: unknown): unknown }; header(k: string, v: string): unknown },
  acting: ActingContext,
  print: string,
  act: () => Promise<unknown>,
): Promise<unknown> {
  const answer = await acting.guard.once(acting.request, print, act);
  if (answer.replayed) reply.header('x-likeness-replayed', 'true');
  return reply.code(answer.status).send(answer.body);
}
