// The seed's task statuses, in the order Wiro's current docs emit them (wiro-api.md §a.4).
export const TASK_STATUSES = [
  'task_queue',
  'task_accept',
  'task_preprocess_start',
  'task_preprocess_end',
  'task_assign',
  'task_start',
  'task_output',
  'task_output_full',
  'task_end',
  'task_postprocess_start',
  'task_postprocess_end',
  'task_cancel',
  'task_error',
] as const;

export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Polling can stop: success or failure (pexit tells which), cancelled, or failed before the model ran. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['task_postprocess_end', 'task_cancel', 'task_error']);

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Statuses a worker holds a task in before the model starts: safe to requeue after a crash. */
export const BEFORE_RUN_STATUSES: ReadonlySet<TaskStatus> = new Set([
  'task_accept',
  'task_preprocess_start',
  'task_preprocess_end',
  'task_assign',
]);

export const TIME_FIELDS = [
  'createtime',
  'accepttime',
  'preprocessstarttime',
  'preprocessendtime',
  'assigntime',
  'starttime',
  'endtime',
  'postprocessstarttime',
  'postprocessendtime',
  'canceltime',
] as const;

export type TimeField = (typeof TIME_FIELDS)[number];

/** The timestamp each status stamps (task_output, task_output_full and task_error stamp none). */
export const STATUS_TIME_FIELD: Partial<Record<TaskStatus, TimeField>> = {
  task_queue: 'createtime',
  task_accept: 'accepttime',
  task_preprocess_start: 'preprocessstarttime',
  task_preprocess_end: 'preprocessendtime',
  task_assign: 'assigntime',
  task_start: 'starttime',
  task_end: 'endtime',
  task_postprocess_start: 'postprocessstarttime',
  task_postprocess_end: 'postprocessendtime',
  task_cancel: 'canceltime',
};
