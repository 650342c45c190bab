// The callback outbox's dispatcher. A task's end puts its final object in the callback_outbox table;
// this loop delivers each item through the guarded network, signed the Standard Webhooks way with the
// project's secret (webhook-id, webhook-timestamp, webhook-signature), records every attempt in the
// task's callbackdelivery, and retries with exponential backoff (base × 2^n, capped) up to a number of
// attempts. Redirects are never followed. Items survive restarts: after a kill -9 the next start resumes.
import type { ServiceContext } from './context.js';
import { standardWebhookHeaders } from '../net/callback.js';
import type { CallbackRecord, OutboxItem, TaskRecord } from './store/types.js';

export interface CallbackPolicy {
  maxAttempts: number;
  backoffBaseMs: number;
  backoffCapMs: number;
}

/** Wait before attempt n+1 after n failed ones: base × 2^(n−1), at most cap. */
export function backoffMs(policy: CallbackPolicy, failedAttempts: number): number {
  return Math.min(policy.backoffCapMs, policy.backoffBaseMs * 2 ** Math.max(0, failedAttempts - 1));
}

export class CallbackDispatcher {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;

  constructor(private readonly ctx: ServiceContext, private readonly policy: CallbackPolicy, private readonly parallel = 4) {}

  async enqueue(task: TaskRecord, payload: object): Promise<void> {
    await this.ctx.store.enqueueCallback({ taskId: task.id, url: task.callbackUrl, body: JSON.stringify(payload), messageId: `msg_${task.uuid}` });
    this.wakeUp?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  /** Resolves once no item is waiting for an attempt (all delivered or given up). For tests and shutdown. */
  async idle(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ((await this.ctx.store.nextCallbackAt()) !== undefined) {
      if (Date.now() > end) throw new Error(`callbacks still pending after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      let waitMs = 1000;
      try {
        const due = await this.ctx.store.dueCallbacks(this.parallel);
        if (due.length > 0) {
          await Promise.all(due.map((item) => this.attempt(item)));
          continue;
        }
        const next = await this.ctx.store.nextCallbackAt();
        if (next !== undefined) waitMs = Math.max(5, Math.min(waitMs, next - Date.now()));
      } catch (err) {
        this.ctx.log.warn(`callbacks: ${err instanceof Error ? err.message : String(err)}; retrying`);
      }
      await new Promise<void>((resolve) => {
        // Unref'd: a pending retry must not keep a process alive that has nothing else to do.
        const timer = setTimeout(resolve, waitMs).unref();
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private async attempt(item: OutboxItem): Promise<void> {
    const ctx = this.ctx;
    const task = await ctx.store.getTaskById(item.taskId);
    if (!task) return ctx.store.recordCallbackAttempt(item.taskId, { ok: false, attempts: item.attempts, lastError: 'the task no longer exists' }, 'done');
    const secret = await ctx.store.webhookSecret(task.projectId);
    const headers = standardWebhookHeaders(secret, item.messageId, Math.floor(Date.now() / 1000), item.body);
    const result = await ctx.net.deliverCallback(item.url, item.body, { headers });
    const attempts = item.attempts + 1;
    const record: CallbackRecord = {
      ok: result.ok, attempts,
      ...(result.lastStatus !== undefined ? { lastStatus: result.lastStatus } : {}),
      ...(result.lastError !== undefined ? { lastError: result.lastError } : {}),
      ...(result.deliveredAt !== undefined ? { deliveredAt: result.deliveredAt } : {}),
    };
    const finished = result.ok || result.retryable === false || attempts >= this.policy.maxAttempts;
    await ctx.store.recordCallbackAttempt(item.taskId, record, finished ? 'done' : { at: Date.now() + backoffMs(this.policy, attempts) });
  }
}
