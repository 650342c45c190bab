// Assembles the embedded service: SQLite store, local files, in-process events and worker, Fastify server.
// On start it recovers from a crash (tasks left mid-flight) and makes a first project and key if none exist.
import { mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServiceConfig } from '../config.js';
import { Background } from './background.js';
import { HomeLock } from './home-lock.js';
import { RetentionSweeper } from './retention.js';
import { CallbackDispatcher } from './callbacks.js';
import type { Network, ServiceContext, ServiceTool } from './context.js';
import { toolKey } from './context.js';
import { TaskEvents } from './events.js';
import { LocalFileStorage } from './files.js';
import { buildServer } from './server.js';
import { SqliteTaskStore } from './store/sqlite.js';
import { announceTerminal } from './tasks/lifecycle.js';
import { Worker } from './worker.js';

export interface Service {
  ctx: ServiceContext;
  server: FastifyInstance;
  worker: Worker;
  retention: RetentionSweeper;
  callbacks: CallbackDispatcher;
  /** Set when this start created the first project's key: tell the user how to read it. */
  firstKey?: { project: string; apiKey: string };
  /** This server's hold on LIKENESS_HOME (released by close()). */
  homeLock: HomeLock;
  listen(): Promise<string>;
  /**
   * Graceful stop (SIGTERM): stop accepting, give a running task `graceMs` to finish, then fail it as
   * "the server stopped; not billed" (pexit 1); queued tasks stay queued for the next start.
   */
  shutdown(graceMs: number, abortWaitMs?: number): Promise<void>;
  /** shutdown(0). */
  close(): Promise<void>;
}

export interface ServiceOptions {
  tools: ServiceTool[];
  net: Network;
  logger?: boolean;
  log?: ServiceContext['log'];
  /** Start the in-process worker (tests that drive the queue by hand turn it off). */
  worker?: boolean;
  pollMs?: number;
  /** What GET /healthz reports besides status (the engine's execution provider and adapter); no auth. */
  health?: () => Record<string, unknown>;
}

export function openStore(config: Pick<ServiceConfig, 'home'> & Partial<Pick<ServiceConfig, 'dbBusyRetryMs'>>): SqliteTaskStore {
  mkdirSync(config.home, { recursive: true });
  const path = join(config.home, 'likeness.db');
  const store = new SqliteTaskStore(path, config.dbBusyRetryMs !== undefined ? { busyRetryMs: config.dbBusyRetryMs } : {});
  try {
    chmodSync(path, 0o600); // it holds API secrets
  } catch {
    /* not fatal on filesystems without modes */
  }
  return store;
}

export async function createService(config: ServiceConfig, opts: ServiceOptions): Promise<Service> {
  mkdirSync(config.home, { recursive: true });
  const homeLock = HomeLock.acquire(config.home);
  try {
    return await startService(config, opts, homeLock);
  } catch (err) {
    homeLock.release();
    throw err;
  }
}

async function startService(config: ServiceConfig, opts: ServiceOptions, homeLock: HomeLock): Promise<Service> {
  const store = openStore(config);
  const log = opts.log ?? {
    info: (m: string) => console.log(m),
    warn: (m: string) => console.warn(m),
    error: (m: string) => console.error(m),
  };
  const ctx: ServiceContext = {
    config,
    store,
    files: new LocalFileStorage(join(config.home, 'files')),
    events: new TaskEvents(),
    tools: new Map(opts.tools.map((t) => [toolKey(t.facts.owner, t.facts.slug), t])),
    net: opts.net,
    background: new Background(),
    callbacks: { enqueue: async (task, payload) => callbacks.enqueue(task, payload) },
    log,
  };
  const callbacks = new CallbackDispatcher(ctx, {
    maxAttempts: config.callbackMaxAttempts, backoffBaseMs: config.callbackBackoffBaseMs, backoffCapMs: config.callbackBackoffCapMs,
  });

  const { requeued, failed } = await store.recoverInFlight('Likeness stopped (process exit or crash)');
  if (requeued.length) log.warn(`requeued ${requeued.length} task(s) that had not started running: ${requeued.join(', ')}`);
  if (failed.length) log.warn(`failed ${failed.length} task(s) that were running when Likeness stopped: ${failed.map((t) => t.id).join(', ')}`);
  for (const t of failed) await announceTerminal(ctx, t);

  let firstKey: Service['firstKey'];
  if ((await store.listProjects()).length === 0) {
    const project = await store.createProject('default', 'signature');
    const key = await store.createKey(project.id);
    firstKey = { project: project.name, apiKey: key.apiKey };
  }

  let closing: Promise<void> | undefined;
  const worker = new Worker(ctx, opts.pollMs);
  const server = await buildServer(ctx, worker, { logger: opts.logger ?? false });
  // Liveness for load balancers and operators: no auth, nothing about tasks or keys.
  server.get('/healthz', async () => ({ status: 'ok', ...(opts.health?.() ?? {}) }));
  if (opts.worker !== false) worker.start();
  const retention = new RetentionSweeper(ctx, config.retentionMs);
  retention.start();
  callbacks.start(); // also resumes deliveries a previous run left in the outbox

  const service: Service = {
    ctx,
    server,
    worker,
    retention,
    callbacks,
    firstKey,
    homeLock,
    async listen() {
      const address = await server.listen({ host: config.host, port: config.port });
      homeLock.setAddress(address);
      return address;
    },
    async shutdown(graceMs: number, abortWaitMs = 5000) {
      if (!closing) {
        closing = (async () => {
          const stopped = server.close(); // no new connections from here on; requests in flight complete
          await worker.stop(graceMs, abortWaitMs);
          await retention.stop();
          await callbacks.stop();
          await stopped;
          await ctx.background.drain();
          await store.close();
          homeLock.release();
        })();
      }
      return closing;
    },
    async close() {
      return service.shutdown(0);
    },
  };
  return service;
}
