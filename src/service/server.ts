// The HTTP face of Likeness: Wiro's endpoints on Fastify. Cross-cutting concerns — body formats, the
// error envelope, authentication — are written once here; each route file reads as the seed documents it.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import websocket from '@fastify/websocket';
import { authenticate, NonceCache } from './auth.js';
import type { ServiceContext } from './context.js';
import { ApiError, failure } from './http.js';
import type { ApiKeyRecord } from './store/types.js';
import { StoreUnavailableError, isBusyError } from './store/sqlite.js';
import { runRoutes } from './routes/run.js';
import { taskRoutes } from './routes/task.js';
import { toolRoutes } from './routes/tool.js';
import { fileRoutes } from './routes/file.js';
import { socketRoutes } from './routes/socket.js';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey: ApiKeyRecord | null;
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

export async function buildServer(ctx: ServiceContext, dispatcher: Dispatcher, opts: { logger?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ? { level: 'info' } : false,
    bodyLimit: ctx.config.bodyLimit,
    // Wiro clients send ids like "2221" as strings; nothing here needs Fastify's ajv coercion.
    ajv: { customOptions: { coerceTypes: false } },
  });
  const nonces = new NonceCache(ctx.config.nonceWindowSeconds);

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
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiError(0, 'Request body is not valid JSON.', 400), undefined);
    }
  });
  await app.register(multipart, {
    limits: { fileSize: ctx.config.maxImageBytes, files: 8, fields: 200, fieldSize: 1024 * 1024, parts: 220 },
  });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  app.decorateRequest('apiKey', null);
  app.addHook('preHandler', async (req: FastifyRequest, reply) => {
    if (!req.routeOptions.config.auth) return;
    const result = await authenticate(ctx.store, nonces, req.headers);
    if (!result.ok) return reply.code(401).send(failure([{ code: 0, message: result.message }]));
    req.apiKey = result.key;
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.httpStatus).send(failure([{ code: err.code, message: err.message }]));
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
