// Wiro's three public clients, as their request patterns — written from reading their source (see README
// "Using Wiro's clients"), not copied: what they sign, when they sign it, which endpoints they call with
// which bodies, what they treat as the end of a task and how they read a WebSocket frame. A server passes
// this suite when those clients, with only the host changed, would complete their flows.
import { createHmac } from 'node:crypto';
import WebSocket from 'ws';
import type { ServiceTool } from '../../src/service/context.js';
import type { RunContext, ToolRunner } from '../../src/service/runner.js';
import { TaskInputError } from '../../src/service/runner.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import type { RunParams } from '../../src/tools/types.js';
import { serviceTool } from '../../src/tools/service-tool.js';
import { TINY_PNG } from '../helpers/service.js';

const hmac = (key: string, secret: string, nonce: string) => createHmac('sha256', key).update(secret + nonce).digest('hex');

/** Wiro's terminal statuses as all three clients list them: task_error is not one. */
export const WIRO_TERMINAL = ['task_postprocess_end', 'task_cancel'];

// ---- The tool: Wiro's real schema and validation, over a stand-in engine that is quick and predictable.

/** A PNG the stand-in engine finds no face in. */
export const NO_FACE_PNG = Buffer.concat([TINY_PNG, Buffer.from('no-face')]);

/** Runs the real tool definition; "hold" in the prompt keeps a run going until it is killed. */
export class StandInEngine implements ToolRunner {
  runs = 0;

  async preprocess(ctx: RunContext): Promise<void> {
    const image = ctx.inputs.inputImage;
    if (image && Buffer.from(image.bytes).subarray(-7).toString() === 'no-face') {
      throw new TaskInputError('no_face', `no face detected in inputImage (a ${image.bytes.length}-byte photo): use a photo with one clearly visible face`);
    }
  }

  async run(ctx: RunContext): Promise<void> {
    this.runs++;
    const { values } = ctx.params as RunParams;
    const steps = Number(values.steps);
    for (let i = 1; i <= steps; i++) {
      if (ctx.signal.aborted) throw new Error('killed');
      ctx.progress({ stepCurrent: i, stepTotal: steps });
      await new Promise((r) => setTimeout(r, 1));
    }
    while (String(values.prompt).includes('hold') && !ctx.signal.aborted) await new Promise((r) => setTimeout(r, 20));
    if (ctx.signal.aborted) throw new Error('killed');
    for (let i = 0; i < Number(values.samples); i++) await ctx.writeOutput(`${i}.png`, TINY_PNG, 'image/png');
  }
}

export function standInTool(engine: StandInEngine): ServiceTool {
  return serviceTool(instantIdControlnetLora, engine);
}

// ---- n8n-nodes-wiroai: utils/auth.ts, utils/polling.ts, the Instant Id Controlnet Lora node.

/** Signs once per execution, with a seconds nonce; the same headers go to Run and to every poll. */
export function n8nHeaders(apiKey: string, apiSecret: string, nowMs = Date.now()): Record<string, string> {
  const nonce = Math.floor(nowMs / 1000).toString();
  return { 'x-api-key': apiKey, 'x-nonce': nonce, 'x-signature': hmac(apiKey, apiSecret, nonce) };
}

/** The node's body with every field left at its default (numbers 0, strings ""), plus the user's few. */
export function n8nDefaultBody(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    selectedModel: '', selectedModelPrivate: '', selectedLoraModel: '', selectedLoraModelPrivate: '',
    selectedLoraModelPrivateUrl: '', inputImageUrl: '', selectedControlnetModel: [], prompt: '', negativePrompt: '',
    steps: 0, scale: 0, ip_adapter_scale: 0, samples: 0, seed: '', scheduler: 'DDIMScheduler', ...fields,
  };
}

/**
 * The node's execute(): Run, then pollTaskUntilComplete with the same headers. Answers the output URL, or
 * the node's codes: "-4" cancelled, "-3" ended with no output, "-2" a request failed, "-1" out of attempts.
 */
export async function n8nRun(base: string, headers: Record<string, string>, body: Record<string, unknown>, poll = { intervalMs: 20, attempts: 500 }): Promise<{ taskid: string; result: string; polls: number }> {
  const res = await fetch(`${base}/v1/Run/wiro/instant-id-controlnet-lora`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`n8n: HTTP ${res.status} from Run: ${await res.text()}`); // httpRequest throws on non-2xx
  const run = (await res.json()) as { taskid?: string; socketaccesstoken?: string };
  if (!run.taskid || !run.socketaccesstoken) throw new Error(`n8n: Wiro API did not return a valid task ID or socket access token ${JSON.stringify(run)}`);
  for (let attempt = 1; attempt <= poll.attempts; attempt++) {
    const r = await fetch(`${base}/v1/Task/Detail`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ tasktoken: run.socketaccesstoken }) });
    if (!r.ok) return { taskid: run.taskid, result: '-2', polls: attempt };
    const task = ((await r.json()) as { tasklist?: { status?: string; outputs?: { url?: string }[] }[] }).tasklist?.[0];
    if (task?.status === 'task_cancel') return { taskid: run.taskid, result: '-4', polls: attempt };
    if (task?.status === 'task_postprocess_end') {
      const urls = (task.outputs ?? []).map((o) => o.url).filter(Boolean);
      return { taskid: run.taskid, result: urls.length ? urls.join(' | ') : '-3', polls: attempt };
    }
    await new Promise((r2) => setTimeout(r2, poll.intervalMs));
  }
  return { taskid: run.taskid, result: '-1', polls: poll.attempts };
}

// ---- Wiro-MCP: src/client.ts (WiroClient) and its tools.

/** Signs every request anew with Date.now() as the nonce; any non-2xx answer is thrown. */
export class McpClient {
  constructor(private readonly apiKey: string, private readonly apiSecret: string, private readonly baseUrl: string, private readonly pollMs = 20) {}

  private headers(json = true): Record<string, string> {
    const nonce = Date.now().toString();
    return { 'x-api-key': this.apiKey, ...(json ? { 'Content-Type': 'application/json' } : {}), 'x-signature': hmac(this.apiKey, this.apiSecret, nonce), 'x-nonce': nonce };
  }

  async request<T = Record<string, unknown>>(path: string, body: Record<string, unknown>): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, { method: 'POST', headers: this.headers(), body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`Wiro API error ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  searchModels() {
    return this.request('/Tool/List', { start: '0', limit: '20', search: '', categories: [], sort: 'relevance', hideworkflows: true, summary: true });
  }

  explore() {
    return this.request<{ explore: { id: string; title: string; tools: { cleanslugowner: string; cleanslugproject: string }[] }[] }>('/Tool/Explore', {});
  }

  getModelSchema(model: string) {
    const [slugowner, ...rest] = model.split('/');
    return this.request('/Tool/Detail', { slugowner, slugproject: rest.join('/') });
  }

  runModel(model: string, params: Record<string, unknown>) {
    return this.request<{ result: boolean; errors: { message: string }[]; taskid: string; socketaccesstoken: string }>(`/Run/${model}`, params);
  }

  getTask(tasktoken: string) {
    return this.request<{ tasklist: Record<string, unknown>[] }>('/Task/Detail', { tasktoken });
  }

  cancelTask(tasktoken: string) {
    return this.request('/Task/Cancel', { tasktoken });
  }

  killTask(tasktoken: string) {
    return this.request('/Task/Kill', { tasktoken });
  }

  /** upload_file: fetches the file, then posts it as the multipart part "file" (no Content-Type of its own). */
  async uploadFile(bytes: Uint8Array, fileName: string) {
    const form = new FormData();
    form.append('file', new Blob([bytes]), fileName);
    const res = await fetch(`${this.baseUrl}/File/Upload`, { method: 'POST', headers: this.headers(false), body: form });
    const text = await res.text();
    if (!res.ok) throw new Error(`Wiro API error ${res.status}: ${text}`);
    return JSON.parse(text) as { result: boolean; list: { id: string; name: string; contenttype: string; size: string; url: string }[] };
  }

  /** waitForTask: polls Task/Detail until a status in TERMINAL_STATUSES. */
  async waitForTask(tasktoken: string, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const task = (await this.getTask(tasktoken)).tasklist?.[0];
      if (task && WIRO_TERMINAL.includes(String(task.status))) return task;
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    throw new Error(`Task timed out after ${timeoutMs / 1000} seconds`);
  }
}

// ---- WiroKit (ReactNative-QuickStart, packages/wirokit): WiroClient, socket-event.ts, task-status.ts.

/** Millisecond nonces from a monotonic counter (never the same twice); baseUrl and socketUrl set separately. */
export class WiroKit {
  private lastNonce = 0;

  constructor(private readonly apiKey: string, private readonly apiSecret: string, readonly baseUrl: string, readonly socketUrl: string) {}

  private headers(contentType: string | null = 'application/json'): Record<string, string> {
    this.lastNonce = Math.max(this.lastNonce + 1, Date.now());
    const nonce = String(this.lastNonce);
    return { 'x-api-key': this.apiKey, 'x-nonce': nonce, 'x-signature': hmac(this.apiKey, this.apiSecret, nonce), ...(contentType ? { 'content-type': contentType } : {}) };
  }

  async postJson(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.baseUrl}${path}`, { method: 'POST', headers: this.headers(), body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status === 401 || res.status === 403) throw new Error(`WiroKit: authentication error ${res.status}: ${JSON.stringify(json.errors)}`);
    if (!res.ok || json.result === false) throw new Error(`WiroKit: API error ${res.status}: ${JSON.stringify(json.errors)}`);
    return json;
  }

  async explore(): Promise<{ id: string; title: string; models: Record<string, unknown>[] }[]> {
    const json = await this.postJson('/Tool/Explore', {});
    return (json.explore as Record<string, unknown>[]).map((c) => ({ id: String(c.id ?? ''), title: String(c.title ?? c.name ?? ''), models: (c.tools as Record<string, unknown>[]) ?? [] }));
  }

  /** upload(): the bytes as multipart part "file"; the result's files are `list`. */
  async upload(bytes: Uint8Array, fileName: string): Promise<{ isSuccess: boolean; files: { id: string; url: string; contentType: string; size: number }[] }> {
    const form = new FormData();
    form.append('file', new Blob([bytes], { type: 'image/png' }), fileName);
    const res = await fetch(`${this.baseUrl}/File/Upload`, { method: 'POST', headers: this.headers(null), body: form });
    const json = (await res.json()) as { result?: boolean; list?: Record<string, unknown>[] };
    return {
      isSuccess: json.result === true,
      files: (json.list ?? []).map((f) => ({ id: String(f.id ?? ''), url: new URL(String(f.url)).toString(), contentType: String(f.contenttype), size: Number(f.size) })),
    };
  }

  async run(model: string, parameters: Record<string, unknown>): Promise<{ taskid: string; token: string }> {
    const json = await this.postJson(`/Run/${model}`, parameters);
    return { taskid: String(json.taskid), token: String(json.socketaccesstoken) };
  }

  async getTask(token: string): Promise<Record<string, unknown>> {
    return ((await this.postJson('/Task/Detail', { tasktoken: token })).tasklist as Record<string, unknown>[])[0]!;
  }

  /**
   * watchTaskSocket() then, as trackTaskWithSocketUpdates does, a Task/Detail snapshot: frames are parsed
   * as socket-event.ts parses them (status from `type`; a completed frame's message is the output list).
   */
  async trackWithSocket(token: string, timeoutMs = 30_000): Promise<{ events: { status: string; terminal: boolean; outputs?: unknown[]; text?: string }[]; task: Record<string, unknown> }> {
    const ws = new WebSocket(this.socketUrl);
    const events: { status: string; terminal: boolean; outputs?: unknown[]; text?: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('WiroKit: the socket saw no terminal event in time')), timeoutMs);
      ws.on('open', () => ws.send(`{"type":"task_info","tasktoken":"${token.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"}`));
      ws.on('message', (data) => {
        const json = JSON.parse(String(data)) as Record<string, unknown>;
        const status = String(json.type ?? '');
        const terminal = WIRO_TERMINAL.includes(status);
        const event: (typeof events)[number] = { status, terminal };
        if (status === 'task_postprocess_end') event.outputs = Array.isArray(json.message) ? json.message : [];
        else if (typeof json.message === 'string') event.text = json.message;
        events.push(event);
        if (terminal) {
          clearTimeout(timer);
          ws.close();
          resolve();
        }
      });
      ws.on('close', () => reject(new Error('WiroKit: The Wiro task WebSocket closed before a terminal event.')));
      ws.on('error', reject);
    });
    return { events, task: await this.getTask(token) };
  }
}
