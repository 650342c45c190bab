// Downloads that never hold the engine (issue 13, F6): while the worker processes one task, the next
// LIKENESS_PREFETCH queued tasks (in claim order, store.peekQueued) have their URL image inputs
// downloaded, through the same downloadUrlInput as preprocess, and the tool runner may warm its own
// caches (the InstantID runner: the LoRA URL). Nothing is written to the store or the task's folder:
// a queued task stays queued and its Detail is unchanged. Results are held in memory, at most
// LIKENESS_PREFETCH tasks' inputs (each within the image size limit), and handed to the worker when it
// claims the task; a pending download is awaited, a failed one is simply fetched again by preprocess
// (so the task's error is the usual one). A task that ends while queued (Kill, Cancel), or leaves the
// next few, has its downloads aborted and dropped; stop() aborts them all.
import { formatBytes } from '../net/guarded-fetch.js';
import type { ServiceContext } from './context.js';
import type { TaskRecord } from './store/types.js';
import { isTerminal } from './tasks/statuses.js';
import { downloadUrlInput, inputLabel, isRemoteUrl, type FetchedInput } from './url-inputs.js';

interface PendingInput {
  label: string;
  promise: Promise<FetchedInput>;
  startedAt: number;
  /** When it arrived (undefined while pending or when it failed). */
  endedAt?: number;
}

/** One queued task's downloads, from its first look to its claim (or drop). */
export class TaskPrefetch {
  private readonly abort = new AbortController();
  private readonly inputs = new Map<string, PendingInput>();
  private claimedAt: number | undefined;
  private unfollow: (() => void) | undefined;

  constructor(readonly taskId: number) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Registers input `id`'s download; `run` calls `began()` when its transfer starts (after any wait). */
  add(id: string, url: string, label: string, run: (began: () => void) => Promise<FetchedInput>): Promise<FetchedInput> {
    const entry = { label, startedAt: Date.now() } as PendingInput;
    entry.promise = run(() => (entry.startedAt = Date.now())).then((fetched) => {
      entry.endedAt = Date.now();
      return fetched;
    });
    entry.promise.catch(() => undefined); // a failure is preprocess's to report, by fetching again
    this.inputs.set(`${id}\n${url}`, entry);
    return entry.promise;
  }

  /** The worker claimed the task: its Kill (or the server's stop) now aborts what is still downloading. */
  claimed(signal: AbortSignal): void {
    this.claimedAt = Date.now();
    const onAbort = (): void => this.abort.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    this.unfollow = () => signal.removeEventListener('abort', onAbort);
  }

  /**
   * Input `id` from `url` as the prefetch got it (awaiting one still under way) and the debugoutput line
   * that says so; undefined when there was none or it failed (the caller downloads it as usual).
   */
  async take(id: string, url: string): Promise<{ input: FetchedInput; note: string } | undefined> {
    const key = `${id}\n${url}`;
    const entry = this.inputs.get(key);
    if (!entry) return undefined;
    this.inputs.delete(key);
    const input = await entry.promise.catch(() => undefined);
    if (!input || entry.endedAt === undefined) return undefined;
    const took = `${formatBytes(input.bytes.byteLength)} in ${((entry.endedAt - entry.startedAt) / 1000).toFixed(1)} s`;
    const before = this.claimedAt === undefined || entry.endedAt <= this.claimedAt;
    return {
      input,
      note: before
        ? `${entry.label}: downloaded while the previous task ran (${took})`
        : `${entry.label}: download started while the previous task ran, finished in preprocess (${took})`,
    };
  }

  /** Aborts what is still under way and lets go of the bytes. */
  close(): void {
    this.unfollow?.();
    this.unfollow = undefined;
    this.abort.abort(new DOMException('prefetch dropped', 'AbortError'));
    this.inputs.clear();
  }
}

export class Prefetcher {
  private readonly ahead = new Map<number, { prefetch: TaskPrefetch; off: () => void }>();
  private refreshing: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  /** @param depth how many queued tasks to download ahead (LIKENESS_PREFETCH); 0: none. */
  constructor(private readonly ctx: ServiceContext, private readonly depth: number) {}

  /** Looks at the queue again (after a claim, a new task): starts what is new, drops what left the next few. */
  refresh(): void {
    if (this.depth <= 0 || this.stopped) return;
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          await this.look();
        } catch (err) {
          this.ctx.log.warn(`prefetch: could not read the queue (${err instanceof Error ? err.message : String(err)}); the next task's inputs are fetched when it starts`);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.refreshing = undefined;
    });
  }

  /** The worker claimed `taskId`: hands over its downloads (to take(), then close()), if any were started. */
  claim(taskId: number): TaskPrefetch | undefined {
    const held = this.ahead.get(taskId);
    if (!held) return undefined;
    this.ahead.delete(taskId);
    held.off();
    return held.prefetch;
  }

  /** Prefetching again after a stop (the worker started again). */
  resume(): void {
    this.stopped = false;
  }

  /** Aborts and drops every prefetch (worker stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const id of [...this.ahead.keys()]) this.drop(id);
    await this.refreshing;
    for (const id of [...this.ahead.keys()]) this.drop(id);
  }

  /** Tasks with downloads held or under way (for tests and logs). */
  get taskIds(): number[] {
    return [...this.ahead.keys()];
  }

  private async look(): Promise<void> {
    const next = await this.ctx.store.peekQueued(this.depth);
    if (this.stopped) return;
    const keep = new Set(next.map((t) => t.id));
    for (const id of [...this.ahead.keys()]) if (!keep.has(id)) this.drop(id);
    for (const task of next) if (!this.ahead.has(task.id)) this.start(task);
  }

  private drop(taskId: number): void {
    const held = this.ahead.get(taskId);
    if (!held) return;
    this.ahead.delete(taskId);
    held.off();
    held.prefetch.close();
  }

  private start(task: TaskRecord): void {
    const ctx = this.ctx;
    const tool = ctx.tools.get(task.tool);
    if (!tool) return;
    let urls: Record<string, string>;
    try {
      urls = tool.inputUrls(task.params);
    } catch {
      return; // preprocess will say what is wrong
    }
    const prefetch = new TaskPrefetch(task.id);
    // Kill or Cancel of a queued task ends it without the worker: its terminal frame drops the prefetch.
    const off = ctx.events.subscribe(task.id, (e) => {
      if (!isTerminal(e.type)) return;
      this.drop(task.id);
      this.refresh(); // the task after the next few moves up
    });
    this.ahead.set(task.id, { prefetch, off });
    const { signal } = prefetch;
    // One input after another within a task (tasks side by side, at most `depth`).
    let chain: Promise<unknown> = Promise.resolve();
    for (const [id, url] of Object.entries(urls)) {
      if (!isRemoteUrl(ctx, url)) continue; // own links are read from disk in preprocess; bad URLs are its to refuse
      const previous = chain;
      chain = prefetch.add(id, url, inputLabel(task, id, url), async (began) => {
        await previous;
        signal.throwIfAborted();
        began();
        return downloadUrlInput(ctx, task, id, url, signal);
      }).catch(() => undefined);
    }
    const warm = tool.runner.prefetch;
    if (warm) {
      void chain.then(async () => {
        if (!signal.aborted) await warm.call(tool.runner, task.params, signal);
      }).catch(() => undefined); // the runner's preprocess fetches again and reports any problem
    }
  }
}
