// What every part of the service shares: configuration, the store, file storage, live events and tools.
import type { ServiceConfig } from '../config.js';
import type { FileStorage } from './files.js';
import type { TaskEvents } from './events.js';
import type { CallbackRecord, TaskRecord, TaskStore } from './store/types.js';
import type { ToolFacts } from './tasks/serialize.js';
import type { ToolRunner } from './runner.js';
import type { Background } from './background.js';

export interface ValidationError {
  code: number;
  message: string;
}

export interface UploadedFileInfo {
  filename: string;
  contentType: string;
  size: number;
}

/** A tool as the service sees it: facts for responses, validation, its file inputs and its runner. */
export interface ServiceTool {
  facts: ToolFacts;
  cps: string;
  /** Ids of file inputs: each arrives as an upload `{id}` or a URL `{id}Url`. */
  fileInputs: string[];
  /**
   * Every body field the tool declares (inputs, `{id}Url`, option settings, callbackUrl). Anything else a
   * client sends is dropped before validation and never stored.
   */
  fields: readonly string[];
  /** The URL inputs of a validated request that the worker must fetch in preprocess, by input id. */
  inputUrls(params: unknown): Record<string, string>;
  /** `scope.projectId`: the authenticated project, whose private models the Run may name. */
  validate(
    body: Record<string, unknown>,
    files: Record<string, UploadedFileInfo>,
    scope?: { projectId?: number },
  ): { ok: true; params: unknown; notes?: string[] } | { ok: false; errors: ValidationError[] };
  /** The Tool/Detail item. */
  detail(): Record<string, unknown>;
  /** The Tool/List item. */
  listItem(): Record<string, unknown>;
  runner: ToolRunner;
}

/** Network access to strangers' URLs (the guarded fetcher), injected so tests and deployments can tune it. */
export interface Network {
  /** Fetches an image URL; errors carry a message naming `label` (e.g. "inputImageUrl") and the URL. */
  fetchImage(url: string, opts: { label: string; signal: AbortSignal }): Promise<{ bytes: Uint8Array; contentType: string }>;
  /** Checks uploaded bytes are an image within the limits; throws an Error with a user-facing message. */
  checkImage(bytes: Uint8Array): Promise<{ contentType: string }>;
  /** One delivery attempt of a callback body (JSON text, sent verbatim) with extra headers; never throws. */
  deliverCallback(url: string, body: string, opts?: { headers?: Record<string, string> }): Promise<CallbackRecord & { retryable?: boolean }>;
}

export interface ServiceContext {
  config: ServiceConfig;
  store: TaskStore;
  files: FileStorage;
  events: TaskEvents;
  tools: Map<string, ServiceTool>;
  net: Network;
  background: Background;
  /** The durable callback outbox. */
  callbacks: { enqueue(task: TaskRecord, payload: object): Promise<void> };
  log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void };
}

export function toolKey(owner: string, slug: string): string {
  return `${owner}/${slug}`;
}
