// POST /v1/Task/Detail, /Task/Cancel, /Task/Kill, /Task/List, /Task/InputOutputDelete.
// A task is named by `taskid`, `tasktoken` or `socketaccesstoken` (Wiro's docs and SDKs use all three).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceContext } from '../context.js';
import { ApiError } from '../http.js';
import { answerOnce, fingerprint } from '../replay.js';
import type { TaskRecord, TaskRef } from '../store/types.js';
import { announceTerminal, describe } from '../tasks/lifecycle.js';
import { isTerminal } from '../tasks/statuses.js';
import { removeTaskFiles } from '../retention.js';

function body(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  return typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

export function taskRefOf(b: Record<string, unknown>): TaskRef {
  const id = b.taskid;
  if (id !== undefined && id !== null && id !== '') {
    const s = String(id);
    if (!/^\d{1,15}$/.test(s)) throw new ApiError(1, 'There is no task yet.');
    return { id: Number(s) };
  }
  const token = b.tasktoken ?? b.socketaccesstoken;
  if (typeof token === 'string' && token !== '') return { token };
  throw new ApiError(0, 'taskid or socketaccesstoken is required');
}

/** The caller's task; "not yours" answers exactly as "not there". */
async function ownTask(ctx: ServiceContext, req: FastifyRequest): Promise<TaskRecord> {
  const task = await ctx.store.getTask(req.apiKey!.projectId, taskRefOf(body(req)));
  if (!task) throw new ApiError(1, 'There is no task yet.');
  return task;
}

async function tasklist(ctx: ServiceContext, task: TaskRecord) {
  return { errors: [], tasklist: [await describe(ctx, task)], result: true };
}

function waitForTerminal(ctx: ServiceContext, taskId: number, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const off = ctx.events.subscribe(taskId, (e) => {
      if (isTerminal(e.type)) done();
    });
    function done() {
      clearTimeout(timer);
      off();
      resolve();
    }
    // It may have ended between the caller's read and this subscription.
    void ctx.store.getTaskById(taskId).then((t) => t && isTerminal(t.status) && done());
  });
}

export function taskRoutes(ctx: ServiceContext) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const auth = { config: { auth: true } };

    app.post('/v1/Task/Detail', auth, async (req) => {
      const task = await ownTask(ctx, req);
      return { total: '1', errors: [], tasklist: [await describe(ctx, task)], result: true };
    });

    // Calls that act answer through the replay guard: an exact replay gets the first answer (replay.ts).
    const once = (route: string, req: FastifyRequest, reply: FastifyReply, act: () => Promise<unknown>) =>
      answerOnce(reply, req.acting(), fingerprint(route, body(req)), act);

    app.post('/v1/Task/Cancel', auth, async (req, reply) => once('Task/Cancel', req, reply, async () => {
      const task = await ownTask(ctx, req);
      if (!(await ctx.store.cancelQueued(task.id))) throw new ApiError(1, 'Task is not in a cancellable state.');
      const cancelled = (await ctx.store.getTaskById(task.id))!;
      await announceTerminal(ctx, cancelled);
      return tasklist(ctx, cancelled);
    }));

    app.post('/v1/Task/Kill', auth, async (req, reply) => once('Task/Kill', req, reply, async () => {
      const task = await ownTask(ctx, req);
      if (isTerminal(task.status)) {
        throw new ApiError(1, `Task could not be killed: it has already ended (status ${task.status}).`);
      }
      if (await ctx.store.cancelQueued(task.id)) {
        const cancelled = (await ctx.store.getTaskById(task.id))!;
        await announceTerminal(ctx, cancelled);
        return tasklist(ctx, cancelled);
      }
      await ctx.store.requestKill(task.id);
      ctx.events.requestKill(task.id);
      await waitForTerminal(ctx, task.id, ctx.config.killWaitMs);
      return tasklist(ctx, (await ctx.store.getTaskById(task.id))!);
    }));

    app.post('/v1/Task/List', auth, async (req) => {
      const b = body(req);
      const start = Math.max(0, Math.floor(Number(b.start ?? 0)) || 0);
      const limit = Math.min(100, Math.max(1, Math.floor(Number(b.limit ?? 20)) || 20));
      const { total, tasks } = await ctx.store.listTasks(req.apiKey!.projectId, start, limit);
      return { total: String(total), errors: [], tasklist: await Promise.all(tasks.map((t) => describe(ctx, t))), result: true };
    });

    app.post('/v1/Task/InputOutputDelete', auth, async (req, reply) => once('Task/InputOutputDelete', req, reply, async () => {
      const task = await ownTask(ctx, req);
      if (!isTerminal(task.status)) throw new ApiError(1, 'Task must be completed or cancelled before deleting files');
      await removeTaskFiles(ctx, task.id);
      return { errors: [], result: true };
    }));
  };
}
