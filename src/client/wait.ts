// Waiting for a task to end: subscribe over the WebSocket (wiro-api.md §a.5), fall back to polling
// Task/Detail when the socket is unavailable or drops (2 s for the first 15 s, 5 s until 60 s, then 10 s,
// as Wiro-MCP polls), and always finish with a fresh Task/Detail read — the socket's word is not final.
import WebSocket from 'ws';
import { WaitTimeoutError } from './errors.js';
import { sleep } from './transport.js';
import type { ProgressGenerate, TaskEventFrame, TaskRef, WiroTask } from './types.js';
import { isTerminalStatus } from './types.js';

export interface WaitOptions {
  /** Every status frame from the socket; when polling, one made-up frame (synthetic: true) per status change. */
  onEvent?: (frame: TaskEventFrame) => void;
  /** Each new denoising step, from the socket's task_output frames or from polled Task/Detail. */
  onProgress?: (progress: ProgressGenerate) => void;
  /** Give up (rejecting with WaitTimeoutError) after this long; the task itself keeps running. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Milliseconds to the next poll, given the time since the wait began (default: Wiro-MCP's schedule). */
  pollInterval?: (elapsedMs: number) => number;
  /** false: poll only, never open the socket. */
  socket?: boolean;
  /** While subscribed, Task/Detail is still read this often in case a frame is lost (default 30 s). */
  socketCheckMs?: number;
}

export interface WaitDeps {
  socketUrl: string;
  detail(ref: TaskRef, signal?: AbortSignal): Promise<WiroTask>;
}

export function defaultPollInterval(elapsedMs: number): number {
  if (elapsedMs < 15_000) return 2_000;
  if (elapsedMs < 60_000) return 5_000;
  return 10_000;
}

const PROGRESS_KEYS = ['task', 'percentage', 'stepCurrent', 'stepTotal', 'speed', 'speedType', 'elapsedTime', 'remainingTime'] as const;

/** A task_output message as progress: an object or, as some Wiro models send it, a JSON string. */
export function progressOf(message: unknown): ProgressGenerate | undefined {
  let m = message;
  if (typeof m === 'string' && m.trimStart().startsWith('{')) {
    try {
      m = JSON.parse(m);
    } catch {
      return undefined;
    }
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  if (o.stepCurrent === undefined || o.stepTotal === undefined) return undefined;
  const p = { type: 'progressGenerate' } as ProgressGenerate;
  for (const k of PROGRESS_KEYS) p[k] = o[k] === undefined || o[k] === null ? '' : String(o[k]);
  return p;
}

/** Whether a frame ends the task. Wiro's task_error frames are interim stderr lines unless they carry status task_error. */
function endsTask(frame: TaskEventFrame): boolean {
  if (frame.type === 'task_error') return frame.status === 'task_error';
  return isTerminalStatus(frame.type);
}

/** Passes events to the caller once each: the socket and a poll may both report the same status or step. */
class Reporter {
  private status?: string;
  private step?: string;

  constructor(private readonly opts: WaitOptions) {}

  frame(f: TaskEventFrame): void {
    // task_output repeats with each step, and a bare task_error is a stderr line; any other status is
    // reported once (a subscription replays the status a poll may already have reported).
    if (f.type === 'task_output') this.status = f.type;
    else if (f.type !== 'task_error' || f.status) {
      if (f.type === this.status) return;
      this.status = f.type;
    }
    this.opts.onEvent?.(f);
    const p = f.type === 'task_output' ? progressOf(f.message) : undefined;
    if (p) this.progress(p);
  }

  polled(task: WiroTask): void {
    if (task.status !== this.status) {
      this.status = task.status;
      const message = task.status === 'task_postprocess_end' ? task.outputs : task.status === 'task_output' ? task.progress ?? null : null;
      this.opts.onEvent?.({ type: task.status, id: task.id, tasktoken: task.socketaccesstoken, message, result: true, synthetic: true });
    }
    const p = task.progress ? progressOf(task.progress) : undefined;
    if (p) this.progress(p);
  }

  private progress(p: ProgressGenerate): void {
    const key = `${p.task}:${p.stepCurrent}/${p.stepTotal}`;
    if (key === this.step) return;
    this.step = key;
    this.opts.onProgress?.(p);
  }
}

type SocketOutcome = 'ended' | 'failed';

function watchSocket(deps: WaitDeps, token: string, reporter: Reporter, checkMs: number, signal: AbortSignal): Promise<SocketOutcome> {
  return new Promise<SocketOutcome>((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(deps.socketUrl, { handshakeTimeout: 10_000 });
    const check = setInterval(() => {
      deps.detail({ tasktoken: token }, signal).then(
        (t) => isTerminalStatus(t.status) && finish('ended'),
        () => undefined, // the socket is the primary path; a failed check is not an answer
      );
    }, checkMs);
    const onAbort = () => finish(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });

    function finish(outcome: SocketOutcome | Error): void {
      if (settled) return;
      settled = true;
      clearInterval(check);
      signal.removeEventListener('abort', onAbort);
      if (outcome === 'ended' && ws.readyState === ws.OPEN) ws.close(1000);
      else ws.terminate();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    }

    ws.on('open', () => ws.send(JSON.stringify({ type: 'task_info', tasktoken: token })));
    ws.on('message', (data, isBinary) => {
      if (isBinary || settled) return;
      let frame: TaskEventFrame;
      try {
        frame = JSON.parse(String(data)) as TaskEventFrame;
      } catch {
        return; // not ours to understand; the final Task/Detail read decides
      }
      if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') return;
      if (frame.result === false || frame.type === 'error') return finish('failed'); // e.g. unknown token: polling will say why
      try {
        reporter.frame(frame);
      } catch (err) {
        return finish(err instanceof Error ? err : new Error(String(err)));
      }
      if (endsTask(frame)) finish('ended');
    });
    ws.on('error', () => finish('failed'));
    ws.on('close', () => finish('failed'));
  });
}

async function poll(deps: WaitDeps, token: string, started: number, reporter: Reporter, interval: (ms: number) => number, signal: AbortSignal): Promise<WiroTask> {
  for (;;) {
    const task = await deps.detail({ tasktoken: token }, signal);
    reporter.polled(task);
    if (isTerminalStatus(task.status)) return task;
    await sleep(interval(Date.now() - started), signal);
  }
}

/** Resolves with the task's final Task/Detail object (success, failure or cancel); rejects on timeout or abort. */
export async function waitForTask(deps: WaitDeps, ref: TaskRef, opts: WaitOptions = {}): Promise<WiroTask> {
  const started = Date.now();
  const label = 'taskid' in ref ? String(ref.taskid) : ref.tasktoken;
  if (opts.signal?.aborted) throw opts.signal.reason;
  const controller = new AbortController();
  const signal = controller.signal;
  const onOuterAbort = () => controller.abort(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const timeoutMs = opts.timeoutMs;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new WaitTimeoutError(label, timeoutMs)), timeoutMs);
  const reporter = new Reporter(opts);
  try {
    let token = 'tasktoken' in ref ? ref.tasktoken : undefined;
    if (!token) {
      const first = await deps.detail(ref, signal);
      reporter.polled(first);
      if (isTerminalStatus(first.status)) return first;
      token = first.socketaccesstoken;
    }
    // Whatever the socket says (ended, or failed and we fall back), Task/Detail has the last word.
    if (opts.socket !== false) await watchSocket(deps, token, reporter, opts.socketCheckMs ?? 30_000, signal);
    return await poll(deps, token, started, reporter, opts.pollInterval ?? defaultPollInterval, signal);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}
