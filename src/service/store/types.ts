// The task store: one interface, an embedded (SQLite) implementation now and a cluster (PostgreSQL) one later.
// Methods are async so both implementations fit; times are unix milliseconds.
import type { TaskStatus, TimeField } from '../tasks/statuses.js';

export type AuthMode = 'signature' | 'apikey';

export interface Project {
  id: number;
  name: string;
  auth: AuthMode;
  createdAt: number;
}

export interface ApiKeyRecord {
  apiKey: string;
  /** Present for signature projects: the server needs it to recompute the HMAC. */
  apiSecret: string | null;
  projectId: number;
  projectName: string;
  auth: AuthMode;
  createdAt: number;
  revokedAt: number | null;
}

/** Latest progress of the denoising loop, as Wiro's progressGenerate message carries it. */
export interface Progress {
  stepCurrent: number;
  stepTotal: number;
  /** Seconds since the run started. */
  elapsed: number;
  task?: string;
}

export interface CallbackRecord {
  ok: boolean;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  deliveredAt?: number;
}

/** A callback waiting in the outbox: the exact body to send (signed as sent) and its Standard Webhooks id. */
export interface OutboxItem {
  taskId: number;
  url: string;
  body: string;
  messageId: string;
  /** Attempts made so far. */
  attempts: number;
  nextAt: number;
}

export interface TaskRecord {
  id: number;
  uuid: string;
  projectId: number;
  /** "owner/slug" of the tool. */
  tool: string;
  socketToken: string;
  status: TaskStatus;
  /** The request's parameters as the client sent them (file inputs replaced by their URLs). */
  parameters: Record<string, unknown>;
  /** The validated, defaulted request the tool runner receives. */
  params: unknown;
  debugoutput: string;
  debugerror: string;
  pexit: string | null;
  callbackUrl: string;
  callback: CallbackRecord | null;
  times: Record<TimeField, number | null>;
  progress: Progress | null;
  /** Cost per second at the time the task was created (string, as Wiro prints it). */
  cps: string;
  killRequested: boolean;
  /** The folder id outputs carry as parentid. */
  folderId: string;
  workerId: string | null;
}

export type FileRole = 'input' | 'output';

export interface FileRecord {
  id: string;
  taskId: number;
  projectId: number;
  role: FileRole;
  name: string;
  contentType: string;
  size: number;
  /** Path relative to the file storage root. */
  path: string;
  accessKey: string;
  addedAt: number;
  modifiedAt: number;
}

export interface NewTask {
  projectId: number;
  tool: string;
  parameters: Record<string, unknown>;
  params: unknown;
  callbackUrl: string;
  cps: string;
  debugoutput?: string;
  /** Refuse (TooManyActiveTasksError) when the project already has this many tasks queued or running. */
  maxActive?: number;
}

/** What a task is looked up by: Wiro clients send any one of these. */
export type TaskRef = { id: number } | { token: string };

export interface TaskPatch {
  appendOutput?: string;
  debugerror?: string;
  pexit?: string;
  progress?: Progress | null;
}

/**
 * What an acting request left behind for replay protection (replay.ts): the request's fingerprint and,
 * once it has been answered, the answer. `status` null means the first request is still being handled.
 */
export interface ReplayRecord {
  fingerprint: string;
  status: number | null;
  response: string | null;
  /** When the first request claimed it (unix ms). */
  createdAt: number;
}

/** A file uploaded with File/Upload, before (and independent of) any task. */
export interface UploadRecord {
  id: string;
  projectId: number;
  name: string;
  contentType: string;
  size: number;
  /** Path relative to the file storage root. */
  path: string;
  accessKey: string;
  addedAt: number;
}

export interface TaskStore {
  // projects and keys
  createProject(name: string, auth: AuthMode): Promise<Project>;
  findProject(name: string): Promise<Project | undefined>;
  listProjects(): Promise<Project[]>;
  createKey(projectId: number): Promise<{ apiKey: string; apiSecret: string | null }>;
  findKey(apiKey: string): Promise<ApiKeyRecord | undefined>;
  listKeys(projectId?: number): Promise<ApiKeyRecord[]>;
  revokeKey(apiKey: string): Promise<boolean>;

  // tasks
  createTask(task: NewTask, inputs?: Omit<FileRecord, 'taskId'>[]): Promise<TaskRecord>;
  /** A project's task, or undefined for "not there" and "not yours" alike. */
  getTask(projectId: number, ref: TaskRef): Promise<TaskRecord | undefined>;
  getTaskById(id: number): Promise<TaskRecord | undefined>;
  /** By socket access token alone (the WebSocket's key: the token itself is the secret). */
  findTaskByToken(token: string): Promise<TaskRecord | undefined>;
  listTasks(projectId: number, start: number, limit: number): Promise<{ total: number; tasks: TaskRecord[] }>;
  /** Atomically takes the oldest queued task (task_queue → task_accept). */
  claimNext(workerId: string): Promise<TaskRecord | undefined>;
  /**
   * Reads (never claims) up to `limit` queued tasks in the order claimNext would take them now, for the
   * worker's prefetch; the order is a forecast (a Run or Kill may change it), never a promise.
   */
  peekQueued(limit: number): Promise<TaskRecord[]>;
  /**
   * Moves a non-terminal task to `status`, stamping its time; returns undefined when the task is already
   * terminal (a Kill or Cancel won the race), so the caller stops.
   */
  transition(id: number, status: TaskStatus, patch?: TaskPatch): Promise<TaskRecord | undefined>;
  /** Updates progress/output without changing status. */
  patch(id: number, patch: TaskPatch): Promise<void>;
  /** Ends a task and records its outputs in one transaction. */
  finish(id: number, status: TaskStatus, patch: TaskPatch, outputs: FileRecord[]): Promise<TaskRecord | undefined>;
  /** task_queue → task_cancel; false when the task is no longer queued. */
  cancelQueued(id: number): Promise<boolean>;
  requestKill(id: number): Promise<void>;
  /** After a crash: requeue tasks that had not started running, fail those that had. Returns the failed ones. */
  recoverInFlight(reason: string): Promise<{ requeued: number[]; failed: TaskRecord[] }>;
  setCallback(id: number, record: CallbackRecord): Promise<void>;

  // files
  listFiles(taskId: number, role?: FileRole): Promise<FileRecord[]>;
  findFile(accessKey: string, name: string): Promise<FileRecord | undefined>;
  /** Removes a task's file records (and marks its files deleted); returns what they pointed at so the caller can delete the bytes. */
  deleteTaskFiles(taskId: number): Promise<FileRecord[]>;
  /** The project's callback signing secret (whsec_…), made on first use. */
  webhookSecret(projectId: number): Promise<string>;
  /** Puts a task's callback in the durable outbox (once per task). */
  enqueueCallback(item: { taskId: number; url: string; body: string; messageId: string }): Promise<void>;
  /** Outbox items whose next attempt is due, earliest first. */
  dueCallbacks(limit: number): Promise<OutboxItem[]>;
  /** When the earliest pending outbox item is due (undefined: none pending). */
  nextCallbackAt(): Promise<number | undefined>;
  /** Stores an attempt's outcome on the task (callbackdelivery) and schedules the next one, or closes the item. */
  recordCallbackAttempt(taskId: number, record: CallbackRecord, next: { at: number } | 'done'): Promise<void>;
  /** Records files a task made after it was created (URL inputs fetched in preprocess). */
  addFiles(files: FileRecord[]): Promise<void>;
  /** Terminal tasks that ended before `endedBefore` and still have their files (for retention), oldest first. */
  tasksToExpire(endedBefore: number, limit: number): Promise<number[]>;

  // uploads (File/Upload)
  addUpload(upload: UploadRecord): Promise<void>;
  findUpload(accessKey: string, name: string): Promise<UploadRecord | undefined>;
  /** Removes a project's upload record; returns it so the caller can delete the bytes. */
  deleteUpload(projectId: number, id: string): Promise<UploadRecord | undefined>;
  /** Removes upload records added before `before` (unix ms); returns them. */
  pruneUploads(before: number): Promise<UploadRecord[]>;

  // replay protection (replay.ts): one record per (scope, ref), e.g. (API key, nonce)
  /** Claims (scope, ref) for a request; when already claimed, returns the existing record instead. */
  claimReplay(scope: string, ref: string, fingerprint: string, expiresAt: number): Promise<{ claimed: true } | { claimed: false; record: ReplayRecord }>;
  completeReplay(scope: string, ref: string, status: number, response: string): Promise<void>;
  /** Forgets a claim whose request failed before it answered, so a retry may act. */
  releaseReplay(scope: string, ref: string): Promise<void>;
  /** Removes records that expired before `now`; returns how many. */
  pruneReplay(now: number): Promise<number>;

  close(): Promise<void>;
}
