// A ToolRunner that runs another ToolRunner in a worker thread, so the engine (weight reading, graph
// building, LoRA merges, image decoding, PNG encoding, not only ORT's run()) never holds the server's
// event loop. It knows nothing of any tool: it is given the URL of a module that exports
// `createRunner(options): ToolRunner` and JSON-like options (structured-cloneable: no functions).
//
// The thread starts on the first call and serves the calls one after another (the service runs one
// task at a time); requests carry ids all the same. The context crosses as data (ids, the project,
// params, inputs with their bytes copied); ctx.signal becomes an "abort" message and an AbortController in the thread;
// the thread's log/progress/writeOutput come back as messages (writeOutput waits for an ack after the
// real ctx.writeOutput). Errors keep their kind: a TaskInputError stays one (code and message), an
// abort stays an AbortError, anything else is an Error with the thread's message and stack — so the
// service's statuses are the same as in-thread. `prefetch` (warming the runner's caches for a queued
// task) is a call of its own, "prefetch" → "done", served beside the task in flight, abortable the same way. If the thread dies, the call in flight fails with a
// clear error and the next call starts a fresh thread (per-task state of the old one is gone).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TaskInputError, type InputFile, type RunContext, type StepProgress, type ToolRunner } from './runner.js';
import { lowerThisThreadForEngine } from '../engine/thread-priority.js';

type Phase = 'preprocess' | 'run' | 'postprocess';

/** The serializable part of a RunContext. */
interface WireContext {
  taskId: number;
  uuid: string;
  projectId: number;
  params: unknown;
  inputs: Record<string, InputFile>;
}

interface WireError {
  kind: 'input' | 'abort' | 'error';
  message: string;
  code?: string;
  name?: string;
  stack?: string;
}

type ToThread =
  | { type: 'call'; id: number; phase: Phase; ctx: WireContext }
  | { type: 'prefetch'; id: number; params: unknown }
  | { type: 'abort'; id: number }
  | { type: 'written'; id: number; seq: number; error?: WireError }
  | { type: 'dispose'; id: number };

type FromThread =
  | { type: 'log'; id: number; line: string }
  | { type: 'progress'; id: number; progress: StepProgress }
  | { type: 'write'; id: number; seq: number; name: string; bytes: Uint8Array; contentType: string }
  | { type: 'done'; id: number; error?: WireError };

interface BootData {
  threadedRunner: { module: string; options: unknown };
}

/** A copy of the view's bytes in a buffer of its own (to transfer without touching the caller's). */
function ownCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function toWire(err: unknown): WireError {
  if (err instanceof TaskInputError || (err instanceof Error && err.name === 'TaskInputError' && typeof (err as { code?: unknown }).code === 'string')) {
    return { kind: 'input', code: (err as TaskInputError).code, message: err.message };
  }
  if (err instanceof Error || err instanceof DOMException) {
    const out: WireError = { kind: err.name === 'AbortError' ? 'abort' : 'error', message: err.message, name: err.name };
    if (err.stack) out.stack = err.stack;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    return out;
  }
  return { kind: 'error', message: String(err) };
}

function fromWire(w: WireError): Error {
  if (w.kind === 'input') return new TaskInputError(w.code ?? 'input', w.message);
  if (w.kind === 'abort') return new DOMException(w.message, 'AbortError');
  const err = new Error(w.message);
  if (w.name && w.name !== 'Error') err.name = w.name;
  if (w.stack) err.stack = w.stack;
  if (w.code) Object.assign(err, { code: w.code });
  return err;
}

/** Compiled, this is dist/…/threaded-runner.js; from sources under tsx it is the .ts file. */
function spawn(module: string, options: unknown): Worker {
  const self = import.meta.url;
  const needsTsx = self.endsWith('.ts') || module.endsWith('.ts');
  const start = `import(${JSON.stringify(self)}).then((m) => m.hostRunner())`;
  // Workers inherit --import tsx, but on Node 20 its loader hooks do not apply inside them (as in
  // engine/onnx/session.ts): register tsx in the thread first.
  const boot = needsTsx
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return ${start}; });`
    : `${start};`;
  const data: BootData = { threadedRunner: { module, options } };
  return new Worker(boot, { eval: true, workerData: data });
}

interface Pending {
  ctx: RunContext | undefined;
  resolve(): void;
  reject(err: Error): void;
}

export class ThreadedRunner implements ToolRunner {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private disposing: Promise<void> | undefined;

  /**
   * @param module absolute URL (file:) of a module exporting `createRunner(options): ToolRunner`
   * @param options passed to createRunner in the thread (structured-cloned: plain data only)
   */
  constructor(private readonly module: string | URL, private readonly options: unknown = {}) {}

  preprocess(ctx: RunContext): Promise<void> {
    return this.call('preprocess', ctx);
  }

  run(ctx: RunContext): Promise<void> {
    return this.call('run', ctx);
  }

  postprocess(ctx: RunContext): Promise<void> {
    return this.call('postprocess', ctx);
  }

  /** Forwards to the thread's runner's prefetch (a no-op there when it has none). */
  prefetch(params: unknown, signal: AbortSignal): Promise<void> {
    if (this.disposing) return Promise.reject(new Error('the engine thread is shutting down'));
    if (signal.aborted) return Promise.reject(new DOMException('prefetch aborted', 'AbortError'));
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.worker === worker) worker.postMessage({ type: 'abort', id } satisfies ToThread);
      };
      const done = (): void => signal.removeEventListener('abort', onAbort);
      this.pending.set(id, { ctx: undefined, resolve: () => { done(); resolve(); }, reject: (e) => { done(); reject(e); } });
      if (!this.post(worker, id, { type: 'prefetch', id, params }, [], done, reject)) return;
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Asks the runner to dispose (if it can); the thread then ends by itself once nothing in it is left
   * running (an ORT run in progress is let finish: killing a thread inside one aborts the process), or
   * is terminated after `timeoutMs`. The next call starts a new thread.
   */
  async dispose(timeoutMs = 30_000): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    if (this.disposing) return this.disposing;
    this.disposing = (async () => {
      const id = this.nextId++;
      const disposed = new Promise<void>((resolve, reject) => this.pending.set(id, { ctx: undefined, resolve, reject }));
      worker.ref();
      worker.postMessage({ type: 'dispose', id } satisfies ToThread);
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), timeoutMs); });
      try {
        await Promise.race([disposed.then(() => exited), late]);
      } catch {
        // the thread died or the runner's dispose failed: end the thread all the same
      } finally {
        clearTimeout(timer);
      }
      if (this.worker === worker) await worker.terminate();
    })();
    try {
      await this.disposing;
    } finally {
      this.disposing = undefined;
    }
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = spawn(String(this.module), this.options);
    worker.unref();
    worker.on('message', (m: FromThread) => this.onMessage(worker, m));
    worker.on('error', (e) => this.died(worker, `the engine thread failed: ${e.message}`));
    worker.on('exit', (code) => this.died(worker, `the engine thread exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  /** Sends a pending request to the thread; when it cannot be sent, forgets it and rejects (false). */
  private post(worker: Worker, id: number, message: ToThread, transfer: ArrayBuffer[], done: () => void, reject: (e: Error) => void): boolean {
    worker.ref();
    try {
      worker.postMessage(message, transfer);
      return true;
    } catch (err) {
      this.pending.delete(id);
      done();
      this.idle(worker);
      reject(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  private call(phase: Phase, ctx: RunContext): Promise<void> {
    if (this.disposing) return Promise.reject(new Error('the engine thread is shutting down'));
    const worker = this.thread();
    const id = this.nextId++;
    const inputs: Record<string, InputFile> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [k, f] of Object.entries(ctx.inputs)) {
      const bytes = ownCopy(f.bytes);
      transfer.push(bytes.buffer as ArrayBuffer);
      inputs[k] = { id: f.id, url: f.url, bytes, contentType: f.contentType, path: f.path };
    }
    const wire: WireContext = { taskId: ctx.taskId, uuid: ctx.uuid, projectId: ctx.projectId, params: ctx.params, inputs };
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.worker === worker) worker.postMessage({ type: 'abort', id } satisfies ToThread);
      };
      const done = (): void => ctx.signal.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        ctx,
        resolve: () => { done(); resolve(); },
        reject: (e) => { done(); reject(e); },
      });
      if (!this.post(worker, id, { type: 'call', id, phase, ctx: wire }, transfer, done, reject)) return;
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private onMessage(worker: Worker, m: FromThread): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'log':
        p.ctx?.log(m.line);
        return;
      case 'progress':
        p.ctx?.progress(m.progress);
        return;
      case 'write': {
        const ack = (error?: WireError): void => {
          if (this.worker !== worker) return;
          worker.postMessage({ type: 'written', id: m.id, seq: m.seq, ...(error ? { error } : {}) } satisfies ToThread);
        };
        const wrote = p.ctx ? p.ctx.writeOutput(m.name, m.bytes, m.contentType) : Promise.reject(new Error('no task to write to'));
        wrote.then(() => ack(), (err: unknown) => ack(toWire(err)));
        return;
      }
      case 'done':
        this.pending.delete(m.id);
        this.idle(worker);
        if (m.error) p.reject(fromWire(m.error));
        else p.resolve();
    }
  }

  private idle(worker: Worker): void {
    if (this.pending.size === 0) worker.unref();
  }

  private died(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    const error = new Error(`${why}; the task's work in it was lost (the next task starts a fresh thread)`);
    for (const p of pending) p.reject(error);
  }
}

// ---- the thread's side ----

/** Entry point inside the thread (called by the boot code; not for other use). */
export function hostRunner(): void {
  const port = parentPort;
  const boot = workerData as BootData | undefined;
  if (isMainThread || !port || !boot?.threadedRunner) throw new Error('hostRunner() runs only in a ThreadedRunner thread');
  lowerThisThreadForEngine(); // the tool's own CPU work (decoding, maps, PNGs) yields to the event loop too
  const { module, options } = boot.threadedRunner;
  let runner: Promise<ToolRunner> | undefined;
  const load = (): Promise<ToolRunner> => {
    runner ??= import(module).then((m: { createRunner?: (o: unknown) => ToolRunner }) => {
      if (typeof m.createRunner !== 'function') throw new Error(`${module} does not export createRunner(options)`);
      return m.createRunner(options);
    });
    return runner;
  };
  const aborts = new Map<number, AbortController>();
  const writes = new Map<number, { resolve(): void; reject(err: Error): void }>();
  let nextSeq = 1;
  const send = (m: FromThread, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

  const call = async (id: number, phase: Phase, wire: WireContext): Promise<void> => {
    const abort = aborts.get(id)!;
    const ctx: RunContext = {
      ...wire,
      signal: abort.signal,
      log: (line) => send({ type: 'log', id, line }),
      progress: (progress) => send({ type: 'progress', id, progress: { ...progress } }),
      writeOutput: (name, bytes, contentType) => new Promise<void>((resolve, reject) => {
        const seq = nextSeq++;
        writes.set(seq, { resolve, reject });
        const copy = ownCopy(bytes);
        send({ type: 'write', id, seq, name, bytes: copy, contentType }, [copy.buffer as ArrayBuffer]);
      }),
    };
    try {
      const r = await load();
      await r[phase]?.(ctx);
      send({ type: 'done', id });
    } catch (err) {
      send({ type: 'done', id, error: toWire(err) });
    } finally {
      aborts.delete(id);
    }
  };

  const prefetch = async (id: number, params: unknown): Promise<void> => {
    try {
      const r = await load();
      await r.prefetch?.(params, aborts.get(id)!.signal);
      send({ type: 'done', id });
    } catch (err) {
      send({ type: 'done', id, error: toWire(err) });
    } finally {
      aborts.delete(id);
    }
  };

  port.on('message', (m: ToThread) => {
    switch (m.type) {
      case 'call':
        aborts.set(m.id, new AbortController());
        void call(m.id, m.phase, m.ctx);
        return;
      case 'prefetch':
        aborts.set(m.id, new AbortController());
        void prefetch(m.id, m.params);
        return;
      case 'abort':
        aborts.get(m.id)?.abort(new DOMException('the task was killed', 'AbortError'));
        return;
      case 'written': {
        const w = writes.get(m.seq);
        writes.delete(m.seq);
        if (m.error) w?.reject(fromWire(m.error));
        else w?.resolve();
        return;
      }
      case 'dispose':
        void (async () => {
          try {
            const r = runner ? await runner.catch(() => undefined) : undefined;
            const d = (r as { dispose?: () => Promise<void> | void } | undefined)?.dispose;
            if (typeof d === 'function') await d.call(r);
            send({ type: 'done', id: m.id });
          } catch (err) {
            send({ type: 'done', id: m.id, error: toWire(err) });
          }
          port.close(); // the thread exits once its own work (an ORT run finishing, say) is done
        })();
    }
  });
}
