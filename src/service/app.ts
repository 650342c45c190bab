// Assembles the embedded service: SQLite store, local files, in-process events and worker, Fastify server.
// On start it recovers from a crash (tasks left mid-flight) and makes a first project and key if none exist.
import { mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServiceConfig } from '../config.js';
import { Background } from './background.js';
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
  /** Set when this start created the first project's key: tell the user how to read it. */
  firstKey?: { project: string; apiKey: string };
  listen(): Promise<string>;
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
    log,
  };

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

  const worker = new Worker(ctx, opts.pollMs);
  const server = await buildServer(ctx, worker, { logger: opts.logger ?? false });
  if (opts.worker !== false) worker.start();

  return {
    ctx,
    server,
    worker,
    firstKey,
    async listen() {
      return server.listen({ host: config.host, port: config.port });
    },
    async close() {
      await worker.stop();
      await server.close();
      await ctx.background.drain();
      await store.close();
    },
  };
}
