// Service configuration: flags override environment variables, which override defaults.
import { resolve } from 'node:path';
import { engineNice } from './engine/thread-priority.js';
import { packedCopyEnabled } from './engine/onnx/packed-copy.js';

export interface ServiceConfig {
  host: string;
  port: number;
  /** Data folder: likeness.db, files/, models/, cache/. */
  home: string;
  /** Base URL put in file links (what clients can reach); defaults to http://host:port. */
  publicUrl: string;
  /** ± seconds a nonce (a timestamp) may be from the clock, and how long acting calls' nonces are remembered; 0 disables both. */
  nonceWindowSeconds: number;
  /** CIDRs / host names the fetcher may reach although private (tests, private deployments). */
  fetchAllow: string[];
  /** Largest image accepted by upload or URL, in bytes. */
  maxImageBytes: number;
  /** Largest decoded image, in pixels (decompression bombs stop here). */
  maxImagePixels: number;
  /** Largest request body (JSON or multipart), in bytes. */
  bodyLimit: number;
  /** How long Task/Kill waits for a running task to stop before answering with its current state. */
  killWaitMs: number;
  // ---- Limits and timeouts (docs/architecture.md, "Limits and failure modes").
  /** How long a database write waits for a lock another process holds before the request or task fails. */
  dbBusyRetryMs: number;
  /** A client must send its request headers within this time. */
  headersTimeoutMs: number;
  /** A client must send its whole request (headers and body) within this time. */
  requestTimeoutMs: number;
  /** A connection with no traffic for this long is closed (also bounds keep-alive between requests). */
  idleTimeoutMs: number;
  /** Open connections one client address may hold at once; more are closed at once. */
  maxConnectionsPerAddress: number;
  /** Largest single text field of a Run (multipart field or JSON string), in bytes. */
  maxFieldBytes: number;
  /** Largest stored parameter record of one task (the declared fields, as JSON), in bytes. */
  maxTaskRecordBytes: number;
  /** On SIGTERM/SIGINT a running task is given this long to finish before it is failed, not billed. */
  stopGraceMs: number;
  /** Files of a task (inputs, outputs) are removed this long after it ended; 0 keeps them. */
  retentionMs: number;
  /** Callback deliveries: attempts in all, and the exponential backoff's first wait and cap. */
  callbackMaxAttempts: number;
  callbackBackoffBaseMs: number;
  callbackBackoffCapMs: number;
  /** Tasks one project may have queued or running at once; a Run past it answers 429 (code 96). */
  maxActivePerProject: number;
  /**
   * Queued tasks (the next ones the worker will claim) whose URL inputs are downloaded while the current
   * task computes; 0 turns prefetching off. Bounds the memory prefetches hold to this many tasks' inputs.
   */
  prefetchTasks: number;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8787,
  home: './data',
  nonceWindowSeconds: 300,
  maxImageBytes: 20 * 1024 * 1024,
  maxImagePixels: 40_000_000,
  bodyLimit: 25 * 1024 * 1024,
  killWaitMs: 30_000,
  dbBusyRetryMs: 30_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  idleTimeoutMs: 30_000,
  maxConnectionsPerAddress: 64,
  maxFieldBytes: 64 * 1024,
  maxTaskRecordBytes: 256 * 1024,
  stopGraceMs: 10_000,
  retentionMs: 7 * 86_400_000,
  callbackMaxAttempts: 10,
  callbackBackoffBaseMs: 1000,
  callbackBackoffCapMs: 600_000,
  maxActivePerProject: 50,
  prefetchTasks: 2,
} as const;

/** Parses LIKENESS_RETENTION: "7d", "12h", "30m", "90s" or seconds; "0" or "off" keeps files forever. */
export function parseRetention(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === '0' || t === 'off' || t === 'never') return 0;
  const m = /^(\d+(?:\.\d+)?)\s*(d|h|m|s)?$/.exec(t);
  if (!m) throw new Error(`LIKENESS_RETENTION must be a duration such as 7d, 12h, 30m or 90s (or 0 to keep files), got "${text}"`);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[(m[2] ?? 's') as 'd' | 'h' | 'm' | 's'];
  return Math.round(Number(m[1]) * unit);
}

function num(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${value}"`);
  return n;
}

/** LIKENESS_PREFETCH: how many queued tasks to download ahead, a whole number 0–16 (0 = off). */
function prefetchCount(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULTS.prefetchTasks;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 16) {
    throw new Error(`LIKENESS_PREFETCH must be a whole number of queued tasks from 0 (off) to 16, got "${value}"`);
  }
  return n;
}

export function loadConfig(
  overrides: Partial<ServiceConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): ServiceConfig {
  engineNice(env.LIKENESS_ENGINE_NICE); // read by the engine's threads (engine/thread-priority.ts); refused here when wrong
  packedCopyEnabled(env); // read where cached models are opened (engine/onnx/packed-copy.ts); refused here when wrong
  const host = overrides.host ?? env.HOST ?? DEFAULTS.host;
  const port = overrides.port ?? num(env.PORT, DEFAULTS.port, 'PORT');
  const publicHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    host,
    port,
    home: resolve(overrides.home ?? env.LIKENESS_HOME ?? DEFAULTS.home),
    publicUrl: (overrides.publicUrl ?? env.LIKENESS_PUBLIC_URL ?? `http://${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${port}`).replace(/\/+$/, ''),
    nonceWindowSeconds: overrides.nonceWindowSeconds ?? num(env.LIKENESS_NONCE_WINDOW, DEFAULTS.nonceWindowSeconds, 'LIKENESS_NONCE_WINDOW'),
    fetchAllow: overrides.fetchAllow ?? (env.LIKENESS_FETCH_ALLOW ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    maxImageBytes: overrides.maxImageBytes ?? num(env.LIKENESS_MAX_IMAGE_BYTES, DEFAULTS.maxImageBytes, 'LIKENESS_MAX_IMAGE_BYTES'),
    maxImagePixels: overrides.maxImagePixels ?? num(env.LIKENESS_MAX_IMAGE_PIXELS, DEFAULTS.maxImagePixels, 'LIKENESS_MAX_IMAGE_PIXELS'),
    bodyLimit: overrides.bodyLimit ?? num(env.LIKENESS_BODY_LIMIT, DEFAULTS.bodyLimit, 'LIKENESS_BODY_LIMIT'),
    killWaitMs: overrides.killWaitMs ?? DEFAULTS.killWaitMs,
    dbBusyRetryMs: overrides.dbBusyRetryMs ?? num(env.LIKENESS_DB_BUSY_MS, DEFAULTS.dbBusyRetryMs, 'LIKENESS_DB_BUSY_MS'),
    headersTimeoutMs: overrides.headersTimeoutMs ?? num(env.LIKENESS_HEADERS_TIMEOUT_MS, DEFAULTS.headersTimeoutMs, 'LIKENESS_HEADERS_TIMEOUT_MS'),
    requestTimeoutMs: overrides.requestTimeoutMs ?? num(env.LIKENESS_REQUEST_TIMEOUT_MS, DEFAULTS.requestTimeoutMs, 'LIKENESS_REQUEST_TIMEOUT_MS'),
    idleTimeoutMs: overrides.idleTimeoutMs ?? num(env.LIKENESS_IDLE_TIMEOUT_MS, DEFAULTS.idleTimeoutMs, 'LIKENESS_IDLE_TIMEOUT_MS'),
    maxConnectionsPerAddress: overrides.maxConnectionsPerAddress
      ?? num(env.LIKENESS_MAX_CONNECTIONS_PER_ADDRESS, DEFAULTS.maxConnectionsPerAddress, 'LIKENESS_MAX_CONNECTIONS_PER_ADDRESS'),
    maxFieldBytes: overrides.maxFieldBytes ?? num(env.LIKENESS_MAX_FIELD_BYTES, DEFAULTS.maxFieldBytes, 'LIKENESS_MAX_FIELD_BYTES'),
    maxTaskRecordBytes: overrides.maxTaskRecordBytes ?? num(env.LIKENESS_MAX_TASK_RECORD_BYTES, DEFAULTS.maxTaskRecordBytes, 'LIKENESS_MAX_TASK_RECORD_BYTES'),
    stopGraceMs: overrides.stopGraceMs ?? num(env.LIKENESS_STOP_GRACE_MS, DEFAULTS.stopGraceMs, 'LIKENESS_STOP_GRACE_MS'),
    retentionMs: overrides.retentionMs ?? (env.LIKENESS_RETENTION ? parseRetention(env.LIKENESS_RETENTION) : DEFAULTS.retentionMs),
    callbackMaxAttempts: overrides.callbackMaxAttempts
      ?? Math.max(1, num(env.LIKENESS_CALLBACK_ATTEMPTS, DEFAULTS.callbackMaxAttempts, 'LIKENESS_CALLBACK_ATTEMPTS')),
    callbackBackoffBaseMs: overrides.callbackBackoffBaseMs ?? num(env.LIKENESS_CALLBACK_BACKOFF_MS, DEFAULTS.callbackBackoffBaseMs, 'LIKENESS_CALLBACK_BACKOFF_MS'),
    maxActivePerProject: overrides.maxActivePerProject
      ?? Math.max(1, num(env.LIKENESS_MAX_ACTIVE_TASKS, DEFAULTS.maxActivePerProject, 'LIKENESS_MAX_ACTIVE_TASKS')),
    callbackBackoffCapMs: overrides.callbackBackoffCapMs ?? num(env.LIKENESS_CALLBACK_BACKOFF_CAP_MS, DEFAULTS.callbackBackoffCapMs, 'LIKENESS_CALLBACK_BACKOFF_CAP_MS'),
    prefetchTasks: overrides.prefetchTasks ?? prefetchCount(env.LIKENESS_PREFETCH),
  };
}
