// The service's Network, made of the guarded fetcher (src/net): strangers' URLs for inputs and callbacks.
import type { ServiceConfig } from '../config.js';
import { checkImage, deliverCallback, fetchImage } from '../net/index.js';
import type { Network } from './context.js';

const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif', tiff: 'image/tiff',
};

export function guardedNetwork(config: ServiceConfig): Network {
  const limits = { maxBytes: config.maxImageBytes, maxPixels: config.maxImagePixels };
  return {
    async fetchImage(url, { label, signal }) {
      const image = await fetchImage(url, { ...limits, label, signal, allow: config.fetchAllow });
      return { bytes: image.bytes, contentType: CONTENT_TYPES[image.info.format] ?? image.contentType };
    },
    async checkImage(bytes) {
      const info = await checkImage(bytes, limits);
      return { contentType: CONTENT_TYPES[info.format] ?? 'application/octet-stream' };
    },
    async deliverCallback(url, body, opts = {}) {
      // One attempt: the outbox (callbacks.ts) owns retries, so they survive a restart.
      const record = await deliverCallback(url, body, { attempts: 1, policy: { allow: config.fetchAllow }, ...(opts.headers ? { headers: opts.headers } : {}) });
      return {
        ok: record.ok,
        attempts: record.attempts,
        retryable: record.retryable,
        ...(record.lastStatus !== undefined ? { lastStatus: record.lastStatus } : {}),
        ...(record.lastError !== undefined ? { lastError: record.lastError } : {}),
        ...(record.deliveredAt !== undefined ? { deliveredAt: Date.parse(record.deliveredAt) } : {}),
      };
    },
  };
}
