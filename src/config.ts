// Service configuration: flags override environment variables, which override defaults.
import { resolve } from 'node:path';

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
} as const;

function num(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${value}"`);
  return n;
}

export function loadConfig(
  overrides: Partial<ServiceConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): ServiceConfig {
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
  };
}
