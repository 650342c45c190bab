// The files a task touched — uploads, fetched URL inputs (the face photo, a pose image), outputs and
// anything left in its staging folder — are removed together: by Task/InputOutputDelete at once, and by
// retention LIKENESS_RETENTION after the task ended (default 7 days; 0 keeps them). Task records stay.
import { dirname, join } from 'node:path';
import type { ServiceContext } from './context.js';
import { taskDir } from './files.js';

/** Deletes every file of a task, recorded or in its folders; returns how many recorded files went. */
export async function removeTaskFiles(ctx: ServiceContext, taskId: number): Promise<number> {
  const removed = await ctx.store.deleteTaskFiles(taskId);
  const folders = new Set([taskDir(taskId), join('staging', String(taskId))]);
  for (const f of removed) {
    await ctx.files.remove(f.path);
    if (f.path.startsWith('uploads/')) folders.add(dirname(f.path)); // one folder per Run request
  }
  for (const folder of folders) await ctx.files.remove(folder);
  return removed.length;
}

/** Removes the files of tasks that ended more than `retentionMs` ago, in batches, on a timer. */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly ctx: ServiceContext, private readonly retentionMs: number, private readonly now = Date.now) {}

  start(): void {
    if (this.retentionMs <= 0 || this.timer) return;
    const every = Math.min(3_600_000, Math.max(1000, Math.floor(this.retentionMs / 4)));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
    void this.sweep();
  }

  /** One pass; concurrent calls share it. Failures are logged and retried at the next pass. */
  sweep(): Promise<void> {
    this.running ??= (async () => {
      try {
        for (;;) {
          const ids = await this.ctx.store.tasksToExpire(this.now() - this.retentionMs, 100);
          for (const id of ids) await removeTaskFiles(this.ctx, id);
          if (ids.length < 100) break;
        }
      } catch (err) {
        this.ctx.log.warn(`retention: could not remove expired files yet: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
