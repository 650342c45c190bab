// What the `likeness run` and `likeness task` verbs share: credentials from the environment, a progress
// display (one updating line on a terminal, plain lines in logs and pipes) and a task summary.
import { LikenessClient } from './client.js';
import { progressOf } from './wait.js';
import type { ProgressGenerate, TaskEventFrame, WiroTask } from './types.js';

export const DEFAULT_URL = 'http://127.0.0.1:8787';

export const MISSING_CREDENTIALS =
  'set LIKENESS_API_KEY and LIKENESS_API_SECRET; create them with `likeness keys create --json`' +
  ' (WIRO_API_KEY and WIRO_API_SECRET are read too; LIKENESS_URL picks the server, default ' + DEFAULT_URL + ')';

/** A client from LIKENESS_URL, LIKENESS_API_KEY / WIRO_API_KEY, LIKENESS_API_SECRET / WIRO_API_SECRET. */
export function clientFromEnv(env: NodeJS.ProcessEnv = process.env): LikenessClient | { error: string } {
  const apiKey = env.LIKENESS_API_KEY || env.WIRO_API_KEY;
  const apiSecret = env.LIKENESS_API_SECRET || env.WIRO_API_SECRET;
  if (!apiKey) return { error: MISSING_CREDENTIALS };
  const baseUrl = env.LIKENESS_URL || DEFAULT_URL;
  try {
    new URL(baseUrl);
  } catch {
    return { error: `LIKENESS_URL is not a URL: "${baseUrl}"` };
  }
  return new LikenessClient({ baseUrl, apiKey, apiSecret, socketUrl: env.LIKENESS_SOCKET_URL || undefined });
}

const STATUS_WORDS: Record<string, string> = {
  task_queue: 'queued',
  task_accept: 'accepted',
  task_preprocess_start: 'preparing inputs',
  task_preprocess_end: 'inputs ready',
  task_assign: 'assigned',
  task_start: 'started',
  task_output: 'generating',
  task_output_full: 'generated',
  task_end: 'finished running',
  task_postprocess_start: 'saving outputs',
  task_postprocess_end: 'done',
  task_cancel: 'cancelled',
  task_error: 'failed',
};

export function statusWords(status: string): string {
  return STATUS_WORDS[status] ?? status;
}

export function progressText(p: ProgressGenerate): string {
  const parts = [`${p.task || 'Generate'} step ${p.stepCurrent}/${p.stepTotal}`];
  if (p.percentage) parts.push(`${p.percentage}%`);
  if (p.speed && p.speedType) parts.push(`${p.speed} ${p.speedType}`);
  if (p.elapsedTime) parts.push(`${p.elapsedTime} elapsed`);
  if (p.remainingTime) parts.push(`${p.remainingTime} left`);
  return parts.join(' · ');
}

export interface Out {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Shows a task's statuses and steps: a single rewritten line on a TTY, one line per change otherwise. */
export class ProgressDisplay {
  private shown = false;

  constructor(private readonly out: Out, private readonly label: string) {}

  event(frame: TaskEventFrame): void {
    if (frame.type === 'task_output' && progressOf(frame.message)) return; // progress() shows it
    if (frame.type === 'task_error' && !frame.status) return; // a stderr line, not a status
    this.show(statusWords(frame.type));
  }

  progress(p: ProgressGenerate): void {
    this.show(progressText(p));
  }

  /** Ends the updating line so what follows starts on its own. */
  done(): void {
    if (this.shown && this.out.isTTY) this.out.write('\n');
    this.shown = false;
  }

  private show(text: string): void {
    const line = `${this.label}: ${text}`;
    if (!this.out.isTTY) {
      this.out.write(`${line}\n`);
      return;
    }
    const width = Math.max(20, (this.out.columns ?? 100) - 1);
    this.out.write(`\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
    this.shown = true;
  }
}

export function succeeded(task: WiroTask): boolean {
  return task.status === 'task_postprocess_end' && task.pexit === '0';
}

/** A few lines a person can act on. */
export function describeTask(task: WiroTask): string[] {
  const outcome = succeeded(task)
    ? 'succeeded'
    : task.status === 'task_postprocess_end'
      ? `failed (exit ${task.pexit})`
      : statusWords(task.status);
  const lines = [`task ${task.id}: ${outcome} [${task.status}]`, `  token    ${task.socketaccesstoken}`];
  if (Number(task.elapsedseconds) > 0) lines.push(`  elapsed  ${Number(task.elapsedseconds).toFixed(1)} s, cost ${task.totalcost}`);
  if (task.progress && !succeeded(task) && task.status !== 'task_cancel') {
    const p = progressOf(task.progress);
    if (p) lines.push(`  progress ${progressText(p)}`);
  }
  if (task.debugerror) lines.push(`  error    ${task.debugerror.trim().split('\n').join('\n           ')}`);
  for (const o of task.outputs) lines.push(`  output   ${o.name} (${o.contenttype}, ${o.size} bytes) ${o.url}`);
  return lines;
}

/** One line for an error a CLI verb caught, with a hint where there is an obvious next step. */
export function errorText(err: unknown, baseUrl: string): string {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.name === 'ApiError' && (e as Error & { httpStatus?: number }).httpStatus === 401) {
    return `${e.message}\n  check LIKENESS_API_KEY and LIKENESS_API_SECRET (create a pair with \`likeness keys create --json\`)`;
  }
  const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
  if (e.message === 'fetch failed' && cause) {
    return `cannot reach ${baseUrl} (${cause.code ?? cause.message}): is \`likeness serve\` running there? Set LIKENESS_URL to point elsewhere.`;
  }
  return e.message;
}

/** Where a CLI verb reads its environment and writes; tests pass their own. */
export interface CliIO {
  stdout: Out;
  stderr: Out;
  env: NodeJS.ProcessEnv;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}
