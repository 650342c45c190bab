// The in-process worker: claims queued tasks one at a time and walks each through the lifecycle —
// preprocess (fetch URL inputs, the runner's checks), run (progress, outputs staged), postprocess
// (outputs published in one transaction). Every failure ends as Wiro ends one: task_postprocess_end with
// pexit "1" and the reason in debugerror (a task_error frame goes first, as a log line); Kill ends as task_cancel.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceContext, ServiceTool } from './context.js';
import { hexId, randomToken } from './ids.js';
import type { InputFile, RunContext, StepProgress } from './runner.js';
import { TaskInputError } from './runner.js';
import type { FileRecord, TaskPatch, TaskRecord } from './store/types.js';
import { StoreUnavailableError } from './store/sqlite.js';
import { advance, announceTerminal } from './tasks/lifecycle.js';
import { progressMessage } from './tasks/serialize.js';
import { taskDir } from './files.js';
import { redactPaths } from './redact.js';
import { Prefetcher, type TaskPrefetch } from './prefetch.js';
import { downloadUrlInput, type FetchedInput } from './url-inputs.js';

class Killed extends Error {
  constructor() {
    super('killed');
  }
}

/** Why a shutdown ends a task: not the user's doing, so pexit 1 and no bill (a Kill is task_cancel, billed). */
export const STOPPED_REASON = 'The server stopped before this task finished (the server stopped; not billed). Run it again.';

/** The abort reason the worker gives a running task when the server shuts down. */
class Shutdown extends Error {
  constructor() {
    super(STOPPED_REASON);
  }
}

/** True if `done` settles within `ms`, false otherwise (the timer is cleared either way). */
async function within(done: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([done.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Message of an error for debugerror: the user's own message where we have one, never a stack. */
function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Worker {
  readonly id = `worker-${process.pid}-${randomToken(6)}`;
  private running = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private current: { taskId: number; abort: AbortController; done: Promise<void> } | undefined;
  /** Terminal writes the database refused (locked past the retry window, disk full): retried before the next claim. */
  private readonly unfinished = new Map<number, { status: 'task_postprocess_end' | 'task_cancel'; patch: TaskPatch }>();
  /** Downloads of the next queued tasks' URL inputs while this one computes (prefetch.ts). */
  private readonly prefetcher: Prefetcher;

  constructor(private readonly ctx: ServiceContext, private readonly pollMs = 1000) {
    this.prefetcher = new Prefetcher(ctx, ctx.config.prefetchTasks);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.prefetcher.resume();
    this.loop = this.run();
  }

  /** A task was queued: look now rather than at the next poll. */
  wake(): void {
    this.wakeUp?.();
    if (this.current) this.prefetcher.refresh(); // busy: start on the new task's downloads now
  }

  /**
   * Stops claiming (queued tasks stay queued for the next start). A running task is given `graceMs` to
   * finish; then it is aborted and ended as pexit 1 "the server stopped; not billed". If the runner does not
   * return within `abortWaitMs` of the abort, the task is ended that way directly and stop() returns.
   */
  async stop(graceMs = 0, abortWaitMs = 5000): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    const prefetches = this.prefetcher.stop(); // queued tasks stay queued; their downloads are dropped
    const current = this.current;
    if (current) {
      const finished = await within(current.done, graceMs);
      if (!finished) {
        current.abort.abort(new Shutdown());
        const returned = await within(current.done, abortWaitMs);
        if (!returned) {
          this.ctx.log.error(`task ${current.taskId} did not stop within ${abortWaitMs} ms of the shutdown; ending it as not billed`);
          await this.end(current.taskId, 'task_postprocess_end', { debugerror: STOPPED_REASON, pexit: '1', progress: null });
          await prefetches;
          return;
        }
      }
    }
    await this.loop;
    await prefetches;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let task: TaskRecord | undefined;
      try {
        await this.retryUnfinished();
        task = await this.ctx.store.claimNext(this.id);
      } catch (err) {
        this.ctx.log.error(`worker could not claim a task: ${errorMessage(err)}`);
      }
      if (task) {
        this.ctx.events.publish({ taskId: task.id, type: 'task_accept', message: null });
        const prefetched = this.prefetcher.claim(task.id);
        this.prefetcher.refresh(); // the next tasks' downloads, while this one computes
        const done = this.process(task, prefetched).catch((err: unknown) => this.ctx.log.error(`worker: task ${task.id}: ${errorMessage(err)}`));
        this.current = { ...this.current!, done };
        await done;
        this.current = undefined;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** Ends a task, or keeps the write for retryUnfinished() when the database refuses it now. */
  private async end(taskId: number, status: 'task_postprocess_end' | 'task_cancel', patch: TaskPatch): Promise<TaskRecord | undefined> {
    try {
      const ended = (await this.ctx.store.finish(taskId, status, patch, [])) ?? (await this.ctx.store.getTaskById(taskId));
      this.unfinished.delete(taskId);
      return ended;
    } catch (err) {
      this.ctx.log.error(`task ${taskId} could not be ended (${errorMessage(err)}); retrying before the next task`);
      this.unfinished.set(taskId, { status, patch });
      return undefined;
    }
  }

  private async retryUnfinished(): Promise<void> {
    for (const [taskId, { status, patch }] of [...this.unfinished]) {
      const ended = await this.end(taskId, status, patch);
      if (!ended) throw new Error('the database is still unavailable');
      await announceTerminal(this.ctx, ended);
    }
  }

  private async process(task: TaskRecord, prefetched?: TaskPrefetch): Promise<void> {
    const ctx = this.ctx;
    const abort = new AbortController();
    this.current = { taskId: task.id, abort, done: Promise.resolve() };
    const offKill = ctx.events.onKill(task.id, () => abort.abort());
    prefetched?.claimed(abort.signal);
    const staged: FileRecord[] = [];
    const stagingDir = join('staging', String(task.id));
    const started = { at: 0 };
    const tool = ctx.tools.get(task.tool);
    let phase: 'preprocess' | 'run' = 'preprocess';
    const step = async (status: Parameters<typeof advance>[2], message: unknown = null) => {
      if (abort.signal.aborted) throw new Killed();
      const t = await advance(ctx, task.id, status, {}, message);
      if (!t) throw new Killed(); // became terminal elsewhere (Kill of a task between phases)
      return t;
    };
    try {
      if (task.killRequested) throw new Killed();
      if (!tool) throw new TaskInputError('tool_missing', `This server no longer offers the tool ${task.tool}.`);
      await step('task_preprocess_start');
      const { inputs, notes } = await this.fetchInputs(task, tool, abort.signal, prefetched);
      const runCtx: RunContext = {
        taskId: task.id,
        uuid: task.uuid,
        projectId: task.projectId,
        params: task.params,
        inputs,
        signal: abort.signal,
        // Output lines and progress are best effort: a locked or full database loses a line, never the server.
        log: (raw) => {
          const line = redactPaths(raw, ctx.config.home);
          ctx.store.patch(task.id, { appendOutput: `${line}\n` }).catch((err: unknown) => ctx.log.warn(`task ${task.id}: output line not stored: ${errorMessage(err)}`));
          ctx.events.publish({ taskId: task.id, type: 'task_output', message: line });
        },
        progress: (p: StepProgress) => {
          const progress = { ...p, elapsed: (Date.now() - started.at) / 1000 };
          ctx.store.transition(task.id, 'task_output', { progress }).catch((err: unknown) => ctx.log.warn(`task ${task.id}: progress not stored: ${errorMessage(err)}`));
          ctx.events.publish({ taskId: task.id, type: 'task_output', message: progressMessage(progress) });
        },
        writeOutput: async (name, bytes, contentType) => {
          if (!/^[\w.-]{1,100}$/.test(name)) throw new Error(`invalid output name ${name}`);
          const path = join(stagingDir, name);
          const size = await ctx.files.put(path, bytes);
          const now = Date.now();
          staged.push({
            id: hexId(), taskId: task.id, projectId: task.projectId, role: 'output', name, contentType, size,
            path: join(taskDir(task.id), 'outputs', name), accessKey: randomToken(30), addedAt: now, modifiedAt: now,
          });
        },
      };
      for (const note of notes) runCtx.log(note);
      await tool.runner.preprocess?.(runCtx);
      await step('task_preprocess_end');
      await step('task_assign');
      phase = 'run';
      started.at = Date.now();
      await step('task_start');
      await tool.runner.run(runCtx);
      if (abort.signal.aborted) throw new Killed();
      await step('task_output_full', { raw: (await ctx.store.getTaskById(task.id))?.debugoutput ?? '' });
      await step('task_end');
      await step('task_postprocess_start');
      await tool.runner.postprocess?.(runCtx);
      if (abort.signal.aborted) throw new Killed();
      for (const f of staged) await ctx.files.move(join(stagingDir, f.name), f.path);
      const done = await ctx.store.finish(task.id, 'task_postprocess_end', { pexit: '0', progress: null }, staged);
      if (!done) throw new Killed();
      await announceTerminal(ctx, done);
    } catch (err) {
      const shutdown = abort.signal.reason instanceof Shutdown;
      await this.fail(task, shutdown ? abort.signal.reason : err, phase, !shutdown && (abort.signal.aborted || err instanceof Killed), staged);
    } finally {
      offKill();
      prefetched?.close();
      await ctx.files.remove(stagingDir).catch(() => undefined);
    }
  }

  private async fail(task: TaskRecord, err: unknown, phase: 'preprocess' | 'run', killed: boolean, staged: FileRecord[]): Promise<void> {
    const ctx = this.ctx;
    const reason = (e: unknown) => redactPaths(errorMessage(e), ctx.config.home);
    for (const f of staged) await ctx.files.remove(f.path).catch(() => undefined);
    let ended: TaskRecord | undefined;
    // The server's own failures (shutdown, database unavailable) end as pexit 1, not billed, whatever the phase.
    const ours = err instanceof Shutdown || err instanceof StoreUnavailableError;
    if (killed) {
      ended = await this.end(task.id, 'task_cancel', { progress: null, pexit: '0' });
    } else {
      // Wiro's clients stop only on task_postprocess_end / task_cancel and read pexit; task_error is, to them,
      // a stderr line. So the reason goes out as a task_error frame, and the task ends as a failed run.
      if (!(err instanceof TaskInputError) && !ours) ctx.log.error(`task ${task.id} failed in ${phase}: ${err instanceof Error ? err.stack : String(err)}`);
      ctx.events.publish({ taskId: task.id, type: 'task_error', message: reason(err) });
      ended = await this.end(task.id, 'task_postprocess_end', { debugerror: reason(err), pexit: '1', progress: null });
    }
    if (ended) await announceTerminal(ctx, ended).catch((e: unknown) => ctx.log.error(`task ${task.id}: announcing its end failed: ${reason(e)}`));
  }

  /** Reads each uploaded input, and downloads each URL input through the guarded fetcher, into the task's folder. */
  private async fetchInputs(
    task: TaskRecord, tool: ServiceTool, signal: AbortSignal, prefetched?: TaskPrefetch,
  ): Promise<{ inputs: Record<string, InputFile>; notes: string[] }> {
    const ctx = this.ctx;
    const inputs: Record<string, InputFile> = {};
    const notes: string[] = [];
    for (const upload of await ctx.store.listFiles(task.id, 'input')) {
      const id = tool.fileInputs.find((i) => upload.name.startsWith(`${i}-`));
      if (!id) continue;
      const path = ctx.files.localPath(upload.path);
      inputs[id] = { id, url: String(task.parameters[id] ?? ''), bytes: await readFile(path), contentType: upload.contentType, path };
    }
    for (const [id, url] of Object.entries(tool.inputUrls(task.params))) {
      if (inputs[id]) continue;
      let fetched: FetchedInput;
      const early = await prefetched?.take(id, url); // a failed prefetch is fetched again: the usual error
      if (early) {
        fetched = early.input;
        notes.push(early.note);
      } else {
        try {
          fetched = await downloadUrlInput(ctx, task, id, url, signal);
        } catch (err) {
          if (signal.aborted) throw new Killed();
          throw err;
        }
      }
      const ext = fetched.contentType.split('/')[1]?.replace('jpeg', 'jpg').replace(/[^a-z0-9]/g, '') || 'bin';
      const path = join(taskDir(task.id), 'inputs', `${id}.${ext}`);
      await ctx.files.put(path, fetched.bytes);
      const now = Date.now();
      // Recorded like an upload, so InputOutputDelete and retention remove it with the task's other files.
      await ctx.store.addFiles([{
        id: hexId(), taskId: task.id, projectId: task.projectId, role: 'input', name: `${id}.${ext}`, contentType: fetched.contentType,
        size: fetched.bytes.byteLength, path, accessKey: randomToken(30), addedAt: now, modifiedAt: now,
      }]);
      inputs[id] = { id, url, bytes: fetched.bytes, contentType: fetched.contentType, path: ctx.files.localPath(path) };
    }
    return { inputs, notes };
  }
}
