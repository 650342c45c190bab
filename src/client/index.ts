// The Likeness / Wiro client: `new LikenessClient({ baseUrl, apiKey, apiSecret })`.
export { LikenessClient, taskRef, type LikenessClientOptions } from './client.js';
export { ApiError, WaitTimeoutError } from './errors.js';
export { NonceSource, signature, authHeaders } from './signing.js';
export { safeFileName } from './download.js';
export { defaultPollInterval, progressOf, type WaitOptions } from './wait.js';
export { isTerminalStatus, TERMINAL_STATUSES } from './types.js';
export type {
  DownloadedFile,
  ProgressGenerate,
  RunFile,
  RunResponse,
  TaskEventFrame,
  TaskList,
  TaskOutput,
  TaskRef,
  TaskStatus,
  ToolDetail,
  ToolListItem,
  WiroErrorItem,
  WiroTask,
} from './types.js';
