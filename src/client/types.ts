// The objects Likeness and Wiro answer with, as a client sees them. Where the service defines the shape
// (statuses, outputs, tool detail) the type is imported from it, so client and server cannot drift.
import type { WiroErrorItem } from '../service/http.js';
import type { TaskStatus } from '../service/tasks/statuses.js';
import type { WiroOutput } from '../service/tasks/serialize.js';
import type { ToolDetail, ToolListItem } from '../tools/detail.js';

export type { TaskStatus, WiroErrorItem, ToolDetail, ToolListItem };

/** Statuses after which nothing more happens to a task (wiro-api.md §a.4). */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set<TaskStatus>(['task_postprocess_end', 'task_cancel', 'task_error']);

export function isTerminalStatus(status: string): boolean {
  return TERMINAL_STATUSES.has(status);
}

/**
 * An output file. Likeness sends every field of the seed's example; Wiro's docs show only name,
 * contenttype, size and url, so only those are required.
 */
export type TaskOutput = Pick<WiroOutput, 'name' | 'contenttype' | 'size' | 'url'> & Partial<Omit<WiroOutput, 'name' | 'contenttype' | 'size' | 'url'>>;

/** The denoising loop's progress: the WebSocket's task_output message (every value a string). */
export interface ProgressGenerate {
  type: 'progressGenerate';
  task: string;
  percentage: string;
  stepCurrent: string;
  stepTotal: string;
  speed: string;
  speedType: string;
  elapsedTime: string;
  remainingTime: string;
}

/** A task as Task/Detail's tasklist[0] shows it: numbers and unix-second times as strings. */
export interface WiroTask {
  id: string;
  uuid?: string;
  socketaccesstoken: string;
  parameters: Record<string, unknown>;
  status: TaskStatus;
  /** The process exit code: "0" is success; set once the task has ended. */
  pexit: string;
  debugoutput: string;
  debugerror: string;
  elapsedseconds: string;
  totalcost: string;
  cps?: string;
  createtime?: string;
  accepttime?: string;
  preprocessstarttime?: string;
  preprocessendtime?: string;
  assigntime?: string;
  starttime?: string;
  endtime?: string;
  postprocessstarttime?: string;
  postprocessendtime?: string;
  canceltime?: string;
  outputs: TaskOutput[];
  size?: string;
  /** Likeness's extension: the latest progress, as the WebSocket carries it. */
  progress?: ProgressGenerate | null;
  [field: string]: unknown;
}

/** Names a task: Wiro accepts the id, or the token as `tasktoken` / `socketaccesstoken`. */
export type TaskRef = { taskid: string | number } | { tasktoken: string };

export interface RunResponse {
  result: true;
  errors: WiroErrorItem[];
  taskid: string;
  socketaccesstoken: string;
}

export interface TaskList {
  total: number;
  tasks: WiroTask[];
}

/** A WebSocket frame: {type, id, tasktoken, message, result}; terminal frames add status and pexit. */
export interface TaskEventFrame {
  type: string;
  id?: string;
  tasktoken?: string;
  message: unknown;
  result: boolean;
  status?: string;
  pexit?: string;
  /** Set on frames the client made up from a Task/Detail poll (the socket was unavailable). */
  synthetic?: true;
}

/** A file to upload with Run: bytes, a Blob (its `name` is used when it is a File), or a path on disk. */
export type RunFile = Blob | Uint8Array | { path: string };

export interface DownloadedFile {
  output: TaskOutput;
  path: string;
  bytes: number;
}
