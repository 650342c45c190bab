// The HTTP face of Likeness: Wiro's endpoints on Fastify. Cross-cutting concerns — body formats, the
// error envelope, authentication — are written once here; each route file reads as the seed documents it.
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import websocket from '@fastify/websocket';
import { authenticate } from './auth.js';
import { ReplayGuard, type ActingContext } from './replay.js';
import type { ServiceContext } from './context.js';
import { ApiError, failure } from './http.js';
import { redactPaths } from './redact.js';
import type { ApiKeyRecord } from './store/types.js';
import { StoreUnavailableError, TooManyActiveTasksError, isBusyError } from './store/sqlite.js';
import { runRoutes } from './routes/run.js';
import { taskRoutes } from './routes/task.js';
import { toolRoutes } from './routes/tool.js';
import { fileRoutes } from './routes/file.js';
import { socketRoutes } from './routes/socket.js';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey: ApiKeyRecord | null;
    /** The signed nonce of an authenticated signature-project request. */
    nonce: { value: string; atMs: number } | null;
    /** For routes that act: the replay guard and this request's identity (see replay.ts). */
    acting(): ActingContext;
  }
  interface FastifyContextConfig {
    /** Signed (or API-key) requests only. */
    auth?: boolean;
  }
}

export interface Dispatcher {
  /** Called after a task is queued. */
  wake(): void;
}

/** Parses application/x-www-form-urlencoded into an object (repeated keys become arrays). */
function parseForm(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** Deepest nesting of arrays/objects a JSON body may have: no tool input needs more than two. */
export const MAX_JSON_DEPTH = 32;

/** Deepest bracket nesting of a JSON text, outside strings, in one linear pass (no recursion). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) max = Math.max(max, ++depth);
    else if (c === 125 || c === 93) depth--;
  }
  return max;
}

/** File parts one multipart Run may carry (a tool's file inputs; the InstantID tool has two). */
export const MAX_FILE_PARTS = 2;

/** A multipart body carries its images besides the fields: bodyLimit for the fields plus each image's limit. */
export function multipartLimit(cfg: { bodyLimit: number; maxImageBytes: number }): number {
  return cfg.bodyLimit + MAX_FILE_PARTS * cfg.maxImageBytes;
}

/**
 * Closes a new connection at once when its address already holds `max` open ones, so one client cannot
 * take every file descriptor. Counted per remote address (IPv4-mapped IPv6 folded to IPv4).
 */
function limitConnectionsPerAddress(app: FastifyInstance, max: number): void {
  if (!(max > 0)) return;
  const open = new Map<string, number>();
  app.server.on('connection', (socket: Socket) => {
    const address = (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    const n = (open.get(address) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

export async function buildServer(ctx: ServiceContext, dispatcher: Dispatcher, opts: { logger?: boolean } = {}): Promise<FastifyInstance> {
  const cfg = ctx.config;
  const app = Fastify({
    logger: opts.logger ? { level: 'info' } : false,
    bodyLimit: cfg.bodyLimit,
    // Half-sent requests must not pile up until the process runs out of descriptors: headers within
    // headersTimeoutMs, the whole request within requestTimeoutMs (checked every ≤ 1 s), idle sockets closed.
    http: {
      headersTimeout: Math.min(cfg.headersTimeoutMs, cfg.requestTimeoutMs),
      requestTimeout: cfg.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.headersTimeoutMs / 4))),
    },
    requestTimeout: cfg.requestTimeoutMs,
    connectionTimeout: cfg.idleTimeoutMs,
    keepAliveTimeout: Math.min(5000, cfg.idleTimeoutMs),
    forceCloseConnections: 'idle',
    // Wiro clients send ids like "2221" as strings; nothing here needs Fastify's ajv coercion.
    ajv: { customOptions: { coerceTypes: false } },
  });
  const guard = new ReplayGuard(ctx.store, ctx.config.nonceWindowSeconds);
  limitConnectionsPerAddress(app, cfg.maxConnectionsPerAddress);
  // A WebSocket may stay quiet for as long as its task runs: the idle timeout is for HTTP requests only.
  app.server.on('upgrade', (_req, socket: { setTimeout(ms: number): void }) => socket.setTimeout(0));

  // The seed's curl sends JSON with `Content-Type: multipart/form-data` and no boundary: read it as JSON.
  app.addHook('onRequest', async (req) => {
    const type = req.headers['content-type'];
    if (type && /^multipart\/form-data/i.test(type) && !/boundary=/i.test(type)) req.headers['content-type'] = 'application/json';
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, parseForm(body as string));
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    const depth = jsonDepth(text);
    if (depth > MAX_JSON_DEPTH) {
      return done(new ApiError(0, `Request body nests ${depth} levels deep; at most ${MAX_JSON_DEPTH} are accepted.`, 400), undefined);
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiError(0, 'Request body is not valid JSON.', 400), undefined);
    }
  });
  await app.register(multipart, {
    limits: { fileSize: cfg.maxImageBytes, files: MAX_FILE_PARTS, fields: 200, fieldSize: cfg.maxFieldBytes, parts: 210 },
  });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  app.decorateRequest('apiKey', null);
  app.decorateRequest('nonce', null);
  app.decorateRequest('acting', function (this: FastifyRequest): ActingContext {
    if (!this.apiKey) throw new Error('acting() on an unauthenticated request');
    return { guard, request: { key: this.apiKey, nonce: this.nonce ?? undefined } };
  });
  // Size and credentials are judged from the headers alone, before any byte of the body is read or
  // parsed: a stranger's 11 MB body costs a header parse and a closed connection, nothing more. The
  // replay rules, which need the body, run in the acting routes (replay.ts).
  app.addHook('onRequest', async (req: FastifyRequest, reply) => {
    if (req.routeOptions.config.auth) {
      const result = await authenticate(ctx.store, req.headers, { windowSeconds: ctx.config.nonceWindowSeconds });
      if (!result.ok) return reply.code(401).header('connection', 'close').send(failure([{ code: 0, message: result.message }]));
      req.apiKey = result.key;
      req.nonce = result.nonce ?? null;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    const multipart = /^multipart\//i.test(String(req.headers['content-type'] ?? ''));
    const limit = multipart ? multipartLimit(cfg) : cfg.bodyLimit;
    if (Number.isFinite(declared) && declared > limit) {
      return reply.code(413).header('connection', 'close').send(failure([{
        code: 0,
        message: `Request is too large: Content-Length ${declared} is over the ${limit}-byte limit (${multipart
          ? `LIKENESS_BODY_LIMIT plus ${MAX_FILE_PARTS} images of LIKENESS_MAX_IMAGE_BYTES` : 'LIKENESS_BODY_LIMIT'}).`,
      }]));
    }
  });

  app.setErrorHandler((raw: Error & { statusCode?: number; code?: string }, req, reply) => {
    const err = Object.assign(raw, { message: redactPaths(raw.message, cfg.home) });
    if (err instanceof ApiError) return reply.code(err.httpStatus).send(failure([{ code: err.code, message: err.message }]));
    if (err instanceof TooManyActiveTasksError) {
      // Wiro's concurrency code (96); 429 + Retry-After so Wiro's SDKs wait and retry.
      return reply.code(429).header('retry-after', '5').send(failure([{ code: 96, message: err.message }]));
    }
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT') {
      ctx.log.error(`${req.method} ${req.url}: the disk is full (${err.message})`);
      return reply.code(507).send(failure([{ code: 0, message: 'The server has no disk space left to store this request. Try again later.' }]));
    }
    if (err instanceof StoreUnavailableError || isBusyError(err)) {
      ctx.log.warn(`${req.method} ${req.url}: ${err.message}`);
      return reply.code(503).header('retry-after', '2').send(failure([{ code: 0, message: `${err.message} Try again in a moment.` }]));
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.code === 'FST_REQ_FILE_TOO_LARGE' || err.code === 'FST_FILES_LIMIT' || err.code === 'FST_PARTS_LIMIT' || err.code === 'FST_FIELDS_LIMIT') {
      return reply.code(413).send(failure([{ code: 0, message: `Request is too large (${err.message}). Images may be at most ${ctx.config.maxImageBytes} bytes.` }]));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(failure([{ code: 0, message: err.message }]));
    }
    req.log.error(err);
    ctx.log.error(`internal error on ${req.method} ${req.url}: ${err.stack ?? err.message}`);
    return reply.code(500).send(failure([{ code: 0, message: 'Internal error: the server could not complete the request. It has been logged.' }]));
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(failure([{ code: 0, message: 'Error parsing url.' }])));

  await app.register(runRoutes(ctx, dispatcher));
  await app.register(taskRoutes(ctx));
  await app.register(toolRoutes(ctx));
  await app.register(fileRoutes(ctx));
  await app.register(socketRoutes(ctx));
  return app;
}
