// Moving a task through its statuses: each transition is stored (stamping its time) and published to
// WebSocket subscribers; each terminal state is published once and delivered to the callbackUrl.
import type { ServiceContext } from '../context.js';
import type { TaskPatch, TaskRecord } from '../store/types.js';
import { serializeTask, progressMessage } from './serialize.js';
import type { TaskStatus } from './statuses.js';

export async function advance(
  ctx: ServiceContext,
  taskId: number,
  status: TaskStatus,
  patch: TaskPatch = {},
  message: unknown = null,
): Promise<TaskRecord | undefined> {
  const task = await ctx.store.transition(taskId, status, patch);
  if (task) ctx.events.publish({ taskId, type: status, message });
  return task;
}

/** The task as Task/Detail's tasklist[0] shows it. */
export async function describe(ctx: ServiceContext, task: TaskRecord): Promise<Record<string, unknown>> {
  const tool = ctx.tools.get(task.tool);
  const outputs = await ctx.store.listFiles(task.id, 'output');
  const facts = tool?.facts ?? { modelid: '0', owner: task.tool.split('/')[0] ?? '', slug: task.tool.split('/')[1] ?? '', description: '', categories: [] };
  return serializeTask(task, outputs, facts, ctx.config.publicUrl);
}

/** The frame a subscriber gets for the task's current status (also what a late subscriber receives first). */
export async function statusFrame(ctx: ServiceContext, task: TaskRecord): Promise<{ type: TaskStatus; message: unknown; extra?: Record<string, unknown> }> {
  if (task.status === 'task_postprocess_end') {
    const detail = await describe(ctx, task);
    const extra: Record<string, unknown> = { status: task.status, pexit: task.pexit ?? '' };
    if (task.pexit !== '0' && task.debugerror) extra.debugerror = task.debugerror; // a failed run says why
    return { type: task.status, message: detail.outputs, extra };
  }
  if (task.status === 'task_output' && task.progress) return { type: task.status, message: progressMessage(task.progress) };
  if (task.status === 'task_error' || task.status === 'task_cancel') {
    return { type: task.status, message: task.debugerror || null, extra: { status: task.status, pexit: task.pexit ?? '' } };
  }
  return { type: task.status, message: null };
}

/** Publishes a terminal state once and delivers the callback (never changing the task if delivery fails). */
export async function announceTerminal(ctx: ServiceContext, task: TaskRecord): Promise<void> {
  const frame = await statusFrame(ctx, task);
  ctx.events.publish({ taskId: task.id, ...frame });
  if (!task.callbackUrl) return;
  const payload = await describe(ctx, task);
  // Into the durable outbox: delivered (and retried) by the callback dispatcher, also after a restart.
  await ctx.callbacks.enqueue(task, payload).catch((err: unknown) => ctx.log.error(`callback for task ${task.id} could not be queued: ${String(err)}`));
}
