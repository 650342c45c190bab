// A typed client for Likeness and for Wiro itself (the same API): every request signed with a fresh
// nonce, Run sent as JSON or — when files come with it — multipart/form-data, and waits that follow
// the task over the WebSocket with polling as the fallback.
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { downloadOutputs } from './download.js';
import { Transport } from './transport.js';
import type { DownloadedFile, RunFile, RunResponse, TaskList, TaskRef, ToolDetail, WiroTask } from './types.js';
import { waitForTask, type WaitOptions } from './wait.js';

export interface LikenessClientOptions {
  /** http://127.0.0.1:8787 for a local Likeness, https://api.wiro.ai for Wiro (a trailing /v1 is fine too). */
  baseUrl: string;
  apiKey: string;
  /** Absent for API-key-only projects. */
  apiSecret?: string;
  /** The WebSocket; by default the base URL's host at /v1 (wss://socket.wiro.ai/v1 for api.wiro.ai). */
  socketUrl?: string;
  fetch?: typeof globalThis.fetch;
  /** Retries of read-like calls (default 4); Run is never retried. */
  maxRetries?: number;
  retryBaseMs?: number;
}

/** A task named on a command line: digits are a task id, anything else a socket access token. */
export function taskRef(idOrToken: string | number): TaskRef {
  const s = String(idOrToken).trim();
  return /^\d+$/.test(s) ? { taskid: s } : { tasktoken: s };
}

function refBody(ref: TaskRef): Record<string, string> {
  return 'taskid' in ref ? { taskid: String(ref.taskid) } : { tasktoken: ref.tasktoken };
}

function defaultSocketUrl(base: string): string {
  const url = new URL(base);
  if (url.hostname === 'api.wiro.ai') return 'wss://socket.wiro.ai/v1';
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1`;
  return url.toString();
}

const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif' };

async function formFile(name: string, file: RunFile): Promise<{ blob: Blob; filename: string }> {
  if (file instanceof Blob) return { blob: file, filename: 'name' in file && typeof file.name === 'string' && file.name ? file.name : name };
  if (file instanceof Uint8Array) return { blob: new Blob([file]), filename: name };
  const bytes = await readFile(file.path);
  return { blob: new Blob([bytes], { type: MIME[extname(file.path).toLowerCase()] ?? 'application/octet-stream' }), filename: basename(file.path) };
}

function formValue(value: unknown): string {
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export class LikenessClient {
  readonly baseUrl: string;
  readonly socketUrl: string;
  private readonly transport: Transport;

  constructor(opts: LikenessClientOptions) {
    if (!opts.apiKey) throw new Error('LikenessClient needs an apiKey (and the apiSecret of a signature project)');
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.socketUrl = opts.socketUrl ?? defaultSocketUrl(this.baseUrl);
    this.transport = new Transport({
      baseUrl: this.baseUrl,
      apiKey: opts.apiKey,
      apiSecret: opts.apiSecret,
      fetch: opts.fetch ?? globalThis.fetch,
      maxRetries: opts.maxRetries ?? 4,
      retryBaseMs: opts.retryBaseMs ?? 250,
    });
  }

  /**
   * Queues a task. Never retried: a second attempt could queue a second billable task. With files, the
   * request is multipart/form-data (arrays become repeated fields); without, JSON.
   */
  async run(owner: string, tool: string, params: Record<string, unknown> = {}, files?: Record<string, RunFile>, signal?: AbortSignal): Promise<RunResponse> {
    const endpoint = `/v1/Run/${encodeURIComponent(owner)}/${encodeURIComponent(tool)}`;
    if (!files || Object.keys(files).length === 0) return this.transport.post<RunResponse>(endpoint, params, 'never', signal);
    const form = new FormData();
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null) continue;
      for (const item of Array.isArray(v) ? v : [v]) form.append(k, formValue(item));
    }
    for (const [k, file] of Object.entries(files)) {
      const { blob, filename } = await formFile(k, file);
      form.append(k, blob, filename);
    }
    return this.transport.post<RunResponse>(endpoint, form, 'never', signal);
  }

  /** Task/Detail's tasklist[0]. */
  async detail(ref: TaskRef, signal?: AbortSignal): Promise<WiroTask> {
    const res = await this.transport.post<{ tasklist: WiroTask[] }>('/v1/Task/Detail', refBody(ref), 'read', signal);
    const task = res.tasklist?.[0];
    if (!task) throw new Error('Task/Detail answered result:true with an empty tasklist');
    return task;
  }

  /** Stops a running task (it ends as task_cancel); answers the task as it stands afterwards. */
  async kill(ref: TaskRef, signal?: AbortSignal): Promise<WiroTask> {
    return this.act('/v1/Task/Kill', ref, signal);
  }

  /** Removes a queued task (only while queued; use kill once it runs). */
  async cancel(ref: TaskRef, signal?: AbortSignal): Promise<WiroTask> {
    return this.act('/v1/Task/Cancel', ref, signal);
  }

  /** The project's tasks, newest first. */
  async list(page: { start?: number; limit?: number } = {}, signal?: AbortSignal): Promise<TaskList> {
    const body = { type: 'model', sort: 'id', order: 'DESC', start: page.start ?? 0, limit: page.limit ?? 20 };
    const res = await this.transport.post<{ total: string | number; tasklist: WiroTask[] }>('/v1/Task/List', body, 'read', signal);
    return { total: Number(res.total), tasks: res.tasklist ?? [] };
  }

  async toolDetail(owner: string, slug: string, signal?: AbortSignal): Promise<ToolDetail> {
    const res = await this.transport.post<{ tool: ToolDetail[] }>('/v1/Tool/Detail', { slugowner: owner, slugproject: slug }, 'read', signal);
    const tool = res.tool?.[0];
    if (!tool) throw new Error(`Tool/Detail answered result:true without ${owner}/${slug}`);
    return tool;
  }

  /**
   * Waits for the task to end and resolves with its final Task/Detail object — whether it succeeded
   * (pexit "0"), failed or was cancelled. Accepts Run's answer, a task id, a token or a TaskRef.
   */
  async wait(task: RunResponse | TaskRef | string | number, opts: WaitOptions = {}): Promise<WiroTask> {
    const ref: TaskRef =
      typeof task === 'string' || typeof task === 'number' ? taskRef(task) : 'socketaccesstoken' in task ? { tasktoken: task.socketaccesstoken } : task;
    return waitForTask({ socketUrl: this.socketUrl, detail: (r, signal) => this.detail(r, signal) }, ref, opts);
  }

  /** Saves every output of `task` under `dir` (created if needed) with safe, distinct file names. */
  async download(task: Pick<WiroTask, 'outputs'>, dir: string, signal?: AbortSignal): Promise<DownloadedFile[]> {
    return downloadOutputs(this.transport, task, dir, signal);
  }

  private async act(endpoint: string, ref: TaskRef, signal?: AbortSignal): Promise<WiroTask> {
    const res = await this.transport.post<{ tasklist?: WiroTask[] }>(endpoint, refBody(ref), 'refused', signal);
    // Wiro's docs answer {result, errors} only; its examples and Likeness add the task.
    return res.tasklist?.[0] ?? this.detail(ref, signal);
  }
}
