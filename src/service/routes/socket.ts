// The WebSocket (Wiro's wss://socket.wiro.ai/v1): the client sends {"type":"task_info","tasktoken":…};
// the server answers with the task's current status at once (late subscribers would otherwise hang),
// then every event as {type, id, tasktoken, message, result}.
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { ServiceContext } from '../context.js';
import type { TaskEvent } from '../events.js';
import { statusFrame } from '../tasks/lifecycle.js';

function send(socket: WebSocket, frame: Record<string, unknown>): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
}

/** Tasks one WebSocket may follow at once; each task_info for a token already followed is ignored. */
export const MAX_SUBSCRIPTIONS_PER_SOCKET = 32;

export function socketRoutes(ctx: ServiceContext) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const handler = (socket: WebSocket) => {
      const subscriptions = new Map<string, () => void>();
      let closed = false;
      socket.on('message', (data) => {
        void (async () => {
          let msg: { type?: unknown; tasktoken?: unknown };
          try {
            msg = JSON.parse(String(data)) as typeof msg;
          } catch {
            return send(socket, { type: 'error', message: 'Messages must be JSON: {"type":"task_info","tasktoken":"…"}', result: false });
          }
          if (msg.type !== 'task_info' || typeof msg.tasktoken !== 'string') {
            return send(socket, { type: 'error', message: 'Send {"type":"task_info","tasktoken":"<socketaccesstoken>"}.', result: false });
          }
          const token = msg.tasktoken;
          // Claimed before the first await, so quick duplicates find it taken and register nothing.
          if (subscriptions.has(token)) return;
          if (subscriptions.size >= MAX_SUBSCRIPTIONS_PER_SOCKET) {
            return send(socket, {
              type: 'error', tasktoken: token, result: false,
              message: `This socket already follows ${MAX_SUBSCRIPTIONS_PER_SOCKET} tasks: open another socket for more.`,
            });
          }
          let off: () => void = () => undefined;
          subscriptions.set(token, () => off());
          const task = await ctx.store.findTaskByToken(token).catch(() => undefined);
          if (!task) {
            subscriptions.delete(token);
            return send(socket, { type: 'error', tasktoken: token, message: 'There is no task with this token.', result: false });
          }
          if (closed) return;
          const frameOf = (e: Pick<TaskEvent, 'type' | 'message' | 'extra'>) => ({
            type: e.type, id: String(task.id), tasktoken: token, message: e.message, result: true, ...e.extra,
          });
          // Buffer live events until the current status has been sent, so order is kept.
          const early: TaskEvent[] = [];
          let ready = false;
          off = ctx.events.subscribe(task.id, (e) => (ready ? send(socket, frameOf(e)) : early.push(e)));
          const current = (await ctx.store.findTaskByToken(token))!;
          send(socket, frameOf(await statusFrame(ctx, current)));
          for (const e of early) if (e.type !== current.status || e.type === 'task_output') send(socket, frameOf(e));
          ready = true;
        })();
      });
      socket.on('close', () => {
        closed = true;
        for (const off of subscriptions.values()) off();
        subscriptions.clear();
      });
    };
    app.get('/v1', { websocket: true }, handler);
    app.get('/v1/socket', { websocket: true }, handler);
  };
}
