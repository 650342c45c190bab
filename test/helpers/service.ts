// A real Likeness service in a temp folder, on a free loopback port, with a tool defined by the tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ServiceConfig } from '../../src/config.js';
import { createService, type Service } from '../../src/service/app.js';
import { sign } from '../../src/service/auth.js';
import { guardedNetwork } from '../../src/service/network.js';
import type { Network, ServiceTool } from '../../src/service/context.js';
import type { RunContext, ToolRunner } from '../../src/service/runner.js';
import { TaskInputError } from '../../src/service/runner.js';
import type { CallbackRecord } from '../../src/service/store/types.js';

/** 1x1 PNG. */
export const TINY_PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005000201' +
    '7a1d8d8a0000000049454e44ae426082',
  'hex',
);

/**
 * The test tool's behaviour is chosen by its `mode` parameter: ok (two outputs), fail-pre (input error in
 * preprocess), fail-run (error mid-run), slow (many steps with a pause each, for Kill), gate (waits for release()).
 */
export class ScriptedRunner implements ToolRunner {
  private gates: (() => void)[] = [];
  private credits = 0;
  stepDelayMs = 30;

  /** Lets one gated run through: the one waiting now, or the next to arrive. */
  release(): void {
    const waiting = this.gates.shift();
    if (waiting) waiting();
    else this.credits++;
  }

  private gate(): Promise<void> {
    if (this.credits > 0) {
      this.credits--;
      return Promise.resolve();
    }
    return new Promise<void>((r) => this.gates.push(r));
  }

  async preprocess(ctx: RunContext): Promise<void> {
    const p = ctx.params as { mode: string };
    if (p.mode === 'fail-pre') throw new TaskInputError('no_face', 'no face detected in inputImageUrl: use a photo with one clearly visible face');
  }

  async run(ctx: RunContext): Promise<void> {
    const p = ctx.params as { mode: string; steps: number };
    if (p.mode === 'gate') await this.gate();
    for (let i = 1; i <= p.steps; i++) {
      if (ctx.signal.aborted) throw new Error('aborted');
      await new Promise((r) => setTimeout(r, p.mode === 'slow' ? this.stepDelayMs * 5 : 1));
      if (p.mode === 'fail-run' && i === 2) {
        await ctx.writeOutput('partial.png', TINY_PNG, 'image/png');
        throw new Error('the UNet ran out of memory at step 2');
      }
      ctx.progress({ stepCurrent: i, stepTotal: p.steps });
    }
    await ctx.writeOutput('0.png', TINY_PNG, 'image/png');
    await ctx.writeOutput('1.png', TINY_PNG, 'image/png');
  }
}

export function scriptedTool(runner: ToolRunner): ServiceTool {
  return {
    facts: { modelid: '598', owner: 'test', slug: 'scripted', description: 'a tool for tests', categories: ['tool'] },
    cps: '0.000585000000',
    fileInputs: ['inputImage'],
    fields: ['mode', 'steps', 'inputImage', 'inputImageUrl', 'callbackUrl'],
    validate(body) {
      const errors = [];
      const mode = body.mode ?? 'ok';
      if (!['ok', 'fail-pre', 'fail-run', 'slow', 'gate'].includes(String(mode))) errors.push({ code: 0, message: 'Request parameter [mode] is invalid' });
      const steps = Number(body.steps ?? 3);
      if (!Number.isInteger(steps) || steps < 1 || steps > 100) errors.push({ code: 0, message: 'Request parameter [steps] must be between 1 and 100' });
      const inputImageUrl = typeof body.inputImageUrl === 'string' ? body.inputImageUrl : '';
      return errors.length ? { ok: false, errors } : { ok: true, params: { mode: String(mode), steps, inputImageUrl } };
    },
    inputUrls: (params): Record<string, string> => {
      const url = (params as { inputImageUrl: string }).inputImageUrl;
      return url ? { inputImage: url } : {};
    },
    detail: () => ({ slugowner: 'test', slugproject: 'scripted' }),
    listItem: () => ({ slugowner: 'test', slugproject: 'scripted' }),
    runner,
  };
}

/** A network that never leaves the process: URL inputs and callbacks are answered by the test. */
export class FakeNetwork implements Network {
  callbacks: { url: string; payload: Record<string, unknown>; headers: Record<string, string> }[] = [];
  images = new Map<string, Uint8Array>();

  async fetchImage(url: string, opts: { label: string }): Promise<{ bytes: Uint8Array; contentType: string }> {
    const bytes = this.images.get(url);
    if (!bytes) throw new Error(`${opts.label} ${url} answered 404 Not Found`);
    return { bytes, contentType: 'image/png' };
  }

  async checkImage(bytes: Uint8Array): Promise<{ contentType: string }> {
    if (Buffer.from(bytes.subarray(0, 8)).equals(TINY_PNG.subarray(0, 8))) return { contentType: 'image/png' };
    throw new Error('is not an image (expected PNG, JPEG or WebP)');
  }

  async deliverCallback(url: string, body: string, opts: { headers?: Record<string, string> } = {}): Promise<CallbackRecord> {
    this.callbacks.push({ url, payload: JSON.parse(body) as Record<string, unknown>, headers: opts.headers ?? {} });
    return { ok: true, attempts: 1, lastStatus: 200, deliveredAt: Date.now() };
  }
}

export interface TestService {
  service: Service;
  url: string;
  home: string;
  apiKey: string;
  apiSecret: string;
  runner: ScriptedRunner;
  net: FakeNetwork;
  /** POSTs JSON with a fresh signature. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }>;
  signedHeaders(): Record<string, string>;
  close(): Promise<void>;
}

/** Millisecond timestamps, strictly increasing (as WiroKit makes them): each signed request gets its own. */
let lastNonce = 0;
export function nextNonce(): string {
  lastNonce = Math.max(lastNonce + 1, Date.now());
  return String(lastNonce);
}

export async function startTestService(
  opts: { config?: Partial<ServiceConfig>; home?: string; network?: FakeNetwork; realNetwork?: boolean; tools?: ServiceTool[]; worker?: boolean } = {},
): Promise<TestService> {
  const home = opts.home ?? mkdtempSync(join(tmpdir(), 'likeness-test-'));
  const runner = new ScriptedRunner();
  const net = opts.network ?? new FakeNetwork();
  const config = loadConfig({ host: '127.0.0.1', port: 0, home, killWaitMs: 5000, ...opts.config }, {});
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const service = await createService(config, {
    tools: opts.tools ?? [scriptedTool(runner)], net: opts.realNetwork ? guardedNetwork(config) : net, log: quiet, pollMs: 50, worker: opts.worker,
  });
  const address = await service.listen();
  service.ctx.config.publicUrl = address;
  const project = (await service.ctx.store.findProject('default'))!;
  const { apiKey, apiSecret } = await service.ctx.store.createKey(project.id);
  const signedHeaders = () => {
    const nonce = nextNonce();
    return { 'x-api-key': apiKey, 'x-nonce': nonce, 'x-signature': sign(apiKey, apiSecret!, nonce) };
  };
  return {
    service, url: address, home, apiKey, apiSecret: apiSecret!, runner, net, signedHeaders,
    async post(path, body, headers) {
      const res = await fetch(address + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(headers ?? signedHeaders()) },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    },
    async close() {
      await service.close();
      if (!opts.home) rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Polls Task/Detail until the task reaches a terminal status. */
export async function waitForTerminal(s: TestService, taskid: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { json } = await s.post('/v1/Task/Detail', { taskid });
    const task = (json.tasklist as Record<string, unknown>[])[0]!;
    if (['task_postprocess_end', 'task_cancel', 'task_error'].includes(task.status as string)) return task;
    if (Date.now() > end) throw new Error(`task ${taskid} still ${String(task.status)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
