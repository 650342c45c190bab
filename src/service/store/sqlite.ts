// The embedded task store: SQLite in WAL mode through better-sqlite3. Plain SQL, one module.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { hexId, randomToken, randomUUID } from '../ids.js';
import { BEFORE_RUN_STATUSES, STATUS_TIME_FIELD, TIME_FIELDS, isTerminal, type TaskStatus } from '../tasks/statuses.js';
import type {
  ApiKeyRecord, AuthMode, CallbackRecord, FileRecord, FileRole, NewTask, OutboxItem, Project, ReplayRecord, TaskPatch, TaskRecord,
  TaskRef, TaskStore, UploadRecord,
} from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  auth TEXT NOT NULL CHECK (auth IN ('signature', 'apikey')),
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
  api_key TEXT PRIMARY KEY,
  api_secret TEXT,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  tool TEXT NOT NULL,
  socket_token TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  parameters TEXT NOT NULL,
  params TEXT NOT NULL,
  debugoutput TEXT NOT NULL DEFAULT '',
  debugerror TEXT NOT NULL DEFAULT '',
  pexit TEXT,
  callback_url TEXT NOT NULL DEFAULT '',
  callback TEXT,
  progress TEXT,
  cps TEXT NOT NULL,
  kill_requested INTEGER NOT NULL DEFAULT 0,
  folder_id TEXT NOT NULL,
  worker_id TEXT,
  ${TIME_FIELDS.map((f) => `${f} INTEGER`).join(',\n  ')}
);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks(project_id, id);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status, id);
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  project_id INTEGER NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('input', 'output')),
  name TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  path TEXT NOT NULL,
  access_key TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  modified_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_task ON files(task_id, role);
CREATE UNIQUE INDEX IF NOT EXISTS files_access ON files(access_key, name);
`;

// --- Replay protection and uploads (issue #12): their own tables, created after the core schema. ---
// replay_records: one row per (scope, ref) — scope "key:<api key>" with ref the nonce, or "idem:<project id>"
// with ref an Idempotency-Key — so one tenant's records never displace another's; rows leave when expired.
const REPLAY_SCHEMA = `
CREATE TABLE IF NOT EXISTS replay_records (
  scope TEXT NOT NULL,
  ref TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER,
  response TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replay_records_expiry ON replay_records(expires_at);
CREATE TABLE IF NOT EXISTS uploads (
  id TEXT PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  name TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  path TEXT NOT NULL,
  access_key TEXT NOT NULL,
  added_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uploads_access ON uploads(access_key, name);
CREATE INDEX IF NOT EXISTS uploads_added ON uploads(added_at);
`;

// ---- Reliability (issue 13): each column is added once, in its own statement, so other branches'
// migrations merge beside it. `attempts` counts the runs of a task that were cut off by the process
// stopping (crash, kill -9, power): a task that has taken the process down twice is failed, not requeued.
const MIGRATIONS_RELIABILITY: { table: string; column: string; ddl: string }[] = [
  { table: 'tasks', column: 'attempts', ddl: 'ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0' },
  // When InputOutputDelete or retention removed the task's files (NULL: still there).
  { table: 'tasks', column: 'files_deleted_at', ddl: 'ALTER TABLE tasks ADD COLUMN files_deleted_at INTEGER' },
  // The per-project secret callbacks are signed with (Standard Webhooks: whsec_ + base64 of 32 random bytes).
  { table: 'projects', column: 'webhook_secret', ddl: 'ALTER TABLE projects ADD COLUMN webhook_secret TEXT' },
  // Fair scheduling: the worker takes the oldest queued task of the project it served least recently.
  { table: 'projects', column: 'last_claim_seq', ddl: 'ALTER TABLE projects ADD COLUMN last_claim_seq INTEGER' },
];

/** A project's active tasks (queued to running) are counted at every Run: counted from an index. */
const SCHEMA_RELIABILITY_INDEXES = 'CREATE INDEX IF NOT EXISTS tasks_project_status ON tasks(project_id, status);';

/** Run refused: the project already has `limit` tasks queued or running (Wiro's code 96). */
export class TooManyActiveTasksError extends Error {
  constructor(readonly limit: number) {
    super(`This project already has ${limit} tasks queued or running (LIKENESS_MAX_ACTIVE_TASKS): wait for some to finish, then run again.`);
    this.name = 'TooManyActiveTasksError';
  }
}

// The callback outbox (issue 13, F9): one row per task with a callbackUrl, written when the task ends and
// kept across restarts; each attempt is recorded, and the row is done when delivered or given up.
const SCHEMA_CALLBACK_OUTBOX = `
CREATE TABLE IF NOT EXISTS callback_outbox (
  task_id INTEGER PRIMARY KEY REFERENCES tasks(id),
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  message_id TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  done_at INTEGER
);
CREATE INDEX IF NOT EXISTS callback_outbox_due ON callback_outbox(done_at, next_at);
`;

/** Errors SQLite raises when another connection holds the lock: worth waiting for, never fatal. */
const BUSY_CODES = new Set(['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_LOCKED', 'SQLITE_LOCKED_SHAREDCACHE']);

export function isBusyError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && BUSY_CODES.has(String((err as { code?: unknown }).code));
}

/** The database file or its disk is full (or the disk failed to write). */
export function isFullError(err: unknown): boolean {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  return code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR');
}

/** A write that could not be made: the database stayed locked past the retry window, or the disk is full. */
export class StoreUnavailableError extends Error {
  readonly code = 'LIKENESS_STORE_UNAVAILABLE';
  constructor(override readonly cause: unknown, waitedMs: number) {
    super(isFullError(cause)
      ? 'The database could not be written: the disk is full (or failed). Free space under LIKENESS_HOME.'
      : `The database stayed locked by another process for ${Math.round(waitedMs / 1000)} s.`);
    this.name = 'StoreUnavailableError';
  }
}

/** A task in flight when the process stopped this many times is failed instead of requeued. */
export const MAX_CRASHES = 2;

/** Largest WAL kept on disk after a checkpoint (SQLite truncates it back to this). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/** A thread with its own connection that checkpoints the WAL every second (PASSIVE: never blocks writers). */
function startCheckpointer(path: string): Worker {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const Database = require(workerData.module);
    const db = new Database(workerData.path);
    db.pragma('busy_timeout = 1000');
    db.pragma('journal_size_limit = ' + workerData.walLimit);
    let ticks = 0;
    // PASSIVE every second never blocks a writer; every 30 s a TRUNCATE (waits up to busy_timeout for
    // readers) resets the WAL so it cannot grow without bound under a steady stream of writes.
    const timer = setInterval(() => {
      try { db.pragma(++ticks % 30 === 0 ? 'wal_checkpoint(TRUNCATE)' : 'wal_checkpoint(PASSIVE)'); } catch {}
    }, 1000);
    parentPort.on('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
  `;
  const worker = new Worker(code, { eval: true, workerData: { path, walLimit: WAL_SIZE_LIMIT_BYTES, module: createRequire(import.meta.url).resolve('better-sqlite3') } });
  worker.unref();
  return worker;
}

interface TaskRow {
  id: number; uuid: string; project_id: number; tool: string; socket_token: string; status: string;
  parameters: string; params: string; debugoutput: string; debugerror: string; pexit: string | null;
  callback_url: string; callback: string | null; progress: string | null; cps: string; kill_requested: number;
  folder_id: string; worker_id: string | null; attempts: number;
  [time: string]: unknown;
}

interface FileRow {
  id: string; task_id: number; project_id: number; role: string; name: string; content_type: string; size: number;
  path: string; access_key: string; added_at: number; modified_at: number;
}

function toTask(r: TaskRow): TaskRecord {
  const times = Object.fromEntries(TIME_FIELDS.map((f) => [f, (r[f] as number | null) ?? null])) as TaskRecord['times'];
  return {
    id: r.id,
    uuid: r.uuid,
    projectId: r.project_id,
    tool: r.tool,
    socketToken: r.socket_token,
    status: r.status as TaskStatus,
    parameters: JSON.parse(r.parameters) as Record<string, unknown>,
    params: JSON.parse(r.params) as unknown,
    debugoutput: r.debugoutput,
    debugerror: r.debugerror,
    pexit: r.pexit,
    callbackUrl: r.callback_url,
    callback: r.callback ? (JSON.parse(r.callback) as CallbackRecord) : null,
    times,
    progress: r.progress ? (JSON.parse(r.progress) as TaskRecord['progress']) : null,
    cps: r.cps,
    killRequested: r.kill_requested === 1,
    folderId: r.folder_id,
    workerId: r.worker_id,
  };
}

interface UploadRow {
  id: string; project_id: number; name: string; content_type: string; size: number; path: string; access_key: string;
  added_at: number;
}

function toUpload(r: UploadRow): UploadRecord {
  return {
    id: r.id, projectId: r.project_id, name: r.name, contentType: r.content_type, size: r.size, path: r.path,
    accessKey: r.access_key, addedAt: r.added_at,
  };
}

function toFile(r: FileRow): FileRecord {
  return {
    id: r.id, taskId: r.task_id, projectId: r.project_id, role: r.role as FileRole, name: r.name,
    contentType: r.content_type, size: r.size, path: r.path, accessKey: r.access_key, addedAt: r.added_at,
    modifiedAt: r.modified_at,
  };
}

export class SqliteTaskStore implements TaskStore {
  private readonly db: Db;
  private readonly now: () => number;
  private readonly stmt;
  /** Every statement is prepared once: preparing per call showed up in the API benchmark's profile. */
  private readonly statements = new Map<string, Statement>();
  private readonly checkpointer: Worker | undefined;

  /** How long a write waits, in short asynchronous retries, for a lock another process holds. */
  private readonly busyRetryMs: number;

  constructor(path: string, opts: { now?: () => number; busyRetryMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.busyRetryMs = opts.busyRetryMs ?? 30_000;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // better-sqlite3 waits synchronously: a long busy_timeout would freeze every request. Wait briefly
    // here and retry asynchronously (write()), so the event loop keeps serving while the lock is held.
    this.db.pragma('busy_timeout = 25');
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    // Checkpoint the WAL from a second connection on a worker thread, not inside whichever request's
    // write crosses the threshold: automatic checkpoints stalled a Run every ~180 inserts in the API
    // benchmark, and a timer on this thread stalled a batch of requests every tick instead.
    this.db.pragma('wal_autocheckpoint = 0');
    this.checkpointer = path === ':memory:' ? undefined : startCheckpointer(path);
    this.db.exec(SCHEMA);
    this.db.exec(REPLAY_SCHEMA);
    this.db.exec(SCHEMA_CALLBACK_OUTBOX);
    for (const m of MIGRATIONS_RELIABILITY) {
      const has = this.db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${m.table}')`).all().some((c) => c.name === m.column);
      if (!has) this.db.exec(m.ddl);
    }
    this.db.exec(SCHEMA_RELIABILITY_INDEXES);
    const db = this.db;
    this.stmt = {
      taskById: db.prepare<[number], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
      taskOfProjectById: db.prepare<[number, number], TaskRow>('SELECT * FROM tasks WHERE id = ? AND project_id = ?'),
      taskOfProjectByToken: db.prepare<[string, number], TaskRow>('SELECT * FROM tasks WHERE socket_token = ? AND project_id = ?'),
      key: db.prepare<[string], Record<string, unknown>>(
        `SELECT k.api_key, k.api_secret, k.project_id, p.name AS project_name, p.auth, k.created_at, k.revoked_at
         FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.api_key = ?`),
      insertTask: db.prepare(
        `INSERT INTO tasks (uuid, project_id, tool, socket_token, status, parameters, params, debugoutput, callback_url, cps, folder_id, createtime)
         VALUES (@uuid, @project_id, @tool, @socket_token, 'task_queue', @parameters, @params, @debugoutput, @callback_url, @cps, @folder_id, @createtime)`),
      insertFile: db.prepare(
        `INSERT INTO files (id, task_id, project_id, role, name, content_type, size, path, access_key, added_at, modified_at)
         VALUES (@id, @taskId, @projectId, @role, @name, @contentType, @size, @path, @accessKey, @addedAt, @modifiedAt)`),
      claim: db.prepare<[number, string], TaskRow>(
        `UPDATE tasks SET status = 'task_accept', accepttime = ?, worker_id = ?
         WHERE id = (SELECT t.id FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.status = 'task_queue'
                     ORDER BY COALESCE(p.last_claim_seq, 0), t.id LIMIT 1) RETURNING *`),
      // A counter, not a clock: two claims in one millisecond must still take turns.
      claimedBy: db.prepare<[number]>('UPDATE projects SET last_claim_seq = (SELECT COALESCE(MAX(last_claim_seq), 0) + 1 FROM projects) WHERE id = ?'),
      activeOf: db.prepare<[number], { n: number }>(
        "SELECT COUNT(*) AS n FROM tasks WHERE project_id = ? AND status NOT IN ('task_postprocess_end', 'task_cancel', 'task_error')"),
    };
  }

  /**
   * Runs a write, retrying while another connection holds the lock (backoff 10 ms → 250 ms) for up to
   * busyRetryMs; then, or at once for a full disk, throws StoreUnavailableError. Never lets SQLITE_BUSY out.
   */
  private async write<T>(fn: () => T): Promise<T> {
    const start = Date.now();
    let delay = 10;
    for (;;) {
      try {
        return fn();
      } catch (err) {
        const waited = Date.now() - start;
        if (isFullError(err)) throw new StoreUnavailableError(err, waited);
        if (!isBusyError(err)) throw err;
        if (waited >= this.busyRetryMs) throw new StoreUnavailableError(err, waited);
        await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, this.busyRetryMs - waited))));
        delay = Math.min(delay * 2, 250);
      }
    }
  }

  private sql<P extends unknown[] = unknown[], R = unknown>(text: string): Statement<P, R> {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st as unknown as Statement<P, R>;
  }

  async createProject(name: string, auth: AuthMode): Promise<Project> {
    const createdAt = this.now();
    const info = await this.write(() => this.sql('INSERT INTO projects (name, auth, created_at) VALUES (?, ?, ?)').run(name, auth, createdAt));
    return { id: Number(info.lastInsertRowid), name, auth, createdAt };
  }

  async findProject(name: string): Promise<Project | undefined> {
    const r = this.sql<[string], { id: number; name: string; auth: AuthMode; created_at: number }>(
      'SELECT * FROM projects WHERE name = ?').get(name);
    return r && { id: r.id, name: r.name, auth: r.auth, createdAt: r.created_at };
  }

  async listProjects(): Promise<Project[]> {
    return this.sql<[], { id: number; name: string; auth: AuthMode; created_at: number }>('SELECT * FROM projects ORDER BY id')
      .all().map((r) => ({ id: r.id, name: r.name, auth: r.auth, createdAt: r.created_at }));
  }

  async createKey(projectId: number): Promise<{ apiKey: string; apiSecret: string | null }> {
    const project = this.sql<[number], { auth: AuthMode }>('SELECT auth FROM projects WHERE id = ?').get(projectId);
    if (!project) throw new Error(`no project with id ${projectId}`);
    const apiKey = randomToken(32);
    const apiSecret = project.auth === 'signature' ? randomToken(40) : null;
    await this.write(() => this.sql('INSERT INTO api_keys (api_key, api_secret, project_id, created_at) VALUES (?, ?, ?, ?)')
      .run(apiKey, apiSecret, projectId, this.now()));
    return { apiKey, apiSecret };
  }

  private toKey(r: Record<string, unknown>): ApiKeyRecord {
    return {
      apiKey: r.api_key as string, apiSecret: (r.api_secret as string | null) ?? null, projectId: r.project_id as number,
      projectName: r.project_name as string, auth: r.auth as AuthMode, createdAt: r.created_at as number,
      revokedAt: (r.revoked_at as number | null) ?? null,
    };
  }

  async findKey(apiKey: string): Promise<ApiKeyRecord | undefined> {
    const r = this.stmt.key.get(apiKey);
    return r && this.toKey(r);
  }

  async listKeys(projectId?: number): Promise<ApiKeyRecord[]> {
    const sql = `SELECT k.api_key, k.api_secret, k.project_id, p.name AS project_name, p.auth, k.created_at, k.revoked_at
      FROM api_keys k JOIN projects p ON p.id = k.project_id ${projectId === undefined ? '' : 'WHERE k.project_id = ?'} ORDER BY k.created_at`;
    const rows = (projectId === undefined
      ? this.sql<[], Record<string, unknown>>(sql).all()
      : this.sql<[number], Record<string, unknown>>(sql).all(projectId));
    return rows.map((r) => this.toKey(r));
  }

  async revokeKey(apiKey: string): Promise<boolean> {
    return (await this.write(() => this.sql('UPDATE api_keys SET revoked_at = ? WHERE api_key = ? AND revoked_at IS NULL').run(this.now(), apiKey))).changes === 1;
  }

  private readonly insertTaskWithInputs = (task: NewTask, inputs: Omit<FileRecord, 'taskId'>[]): number =>
    this.db.transaction(() => {
      if (task.maxActive !== undefined && this.stmt.activeOf.get(task.projectId)!.n >= task.maxActive) throw new TooManyActiveTasksError(task.maxActive);
      const info = this.stmt.insertTask.run({
        uuid: randomUUID(), project_id: task.projectId, tool: task.tool, socket_token: randomToken(30),
        parameters: JSON.stringify(task.parameters), params: JSON.stringify(task.params ?? null),
        debugoutput: task.debugoutput ?? '', callback_url: task.callbackUrl, cps: task.cps, folder_id: hexId(),
        createtime: this.now(),
      });
      const id = Number(info.lastInsertRowid);
      for (const f of inputs) this.stmt.insertFile.run({ ...f, taskId: id });
      return id;
    })();

  async createTask(task: NewTask, inputs: Omit<FileRecord, 'taskId'>[] = []): Promise<TaskRecord> {
    const id = await this.write(() => this.insertTaskWithInputs(task, inputs));
    return toTask(this.stmt.taskById.get(id)!);
  }

  async getTask(projectId: number, ref: TaskRef): Promise<TaskRecord | undefined> {
    const r = 'id' in ref ? this.stmt.taskOfProjectById.get(ref.id, projectId) : this.stmt.taskOfProjectByToken.get(ref.token, projectId);
    return r && toTask(r);
  }

  async getTaskById(id: number): Promise<TaskRecord | undefined> {
    const r = this.stmt.taskById.get(id);
    return r && toTask(r);
  }

  async findTaskByToken(token: string): Promise<TaskRecord | undefined> {
    const r = this.sql<[string], TaskRow>('SELECT * FROM tasks WHERE socket_token = ?').get(token);
    return r && toTask(r);
  }

  async listTasks(projectId: number, start: number, limit: number): Promise<{ total: number; tasks: TaskRecord[] }> {
    const total = this.sql<[number], { n: number }>('SELECT COUNT(*) AS n FROM tasks WHERE project_id = ?').get(projectId)!.n;
    const rows = this.sql<[number, number, number], TaskRow>(
      'SELECT * FROM tasks WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?').all(projectId, limit, start);
    return { total, tasks: rows.map(toTask) };
  }

  async claimNext(workerId: string): Promise<TaskRecord | undefined> {
    const r = await this.write(this.db.transaction(() => {
      const now = this.now();
      const row = this.stmt.claim.get(now, workerId);
      if (row) this.stmt.claimedBy.run(row.project_id);
      return row;
    }));
    return r && toTask(r);
  }

  async peekQueued(limit: number): Promise<TaskRecord[]> {
    if (limit <= 0) return [];
    // Each project's oldest `limit` queued tasks, then the claim statement's turns replayed in memory: the
    // project with the lowest last_claim_seq (ties: the oldest task) gives its oldest task and goes last.
    const rows = this.sql<[number], TaskRow & { seq: number }>(
      `SELECT * FROM (SELECT t.*, COALESCE(p.last_claim_seq, 0) AS seq, ROW_NUMBER() OVER (PARTITION BY t.project_id ORDER BY t.id) AS rn
                       FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.status = 'task_queue')
       WHERE rn <= ? ORDER BY project_id, id`).all(limit);
    const turns = new Map<number, { seq: number; rows: (TaskRow & { seq: number })[] }>();
    for (const r of rows) {
      const turn = turns.get(r.project_id) ?? { seq: r.seq, rows: [] };
      turn.rows.push(r);
      turns.set(r.project_id, turn);
    }
    let top = Math.max(0, ...[...turns.values()].map((t) => t.seq));
    const out: TaskRecord[] = [];
    while (out.length < limit) {
      let next: { seq: number; rows: TaskRow[] } | undefined;
      for (const t of turns.values()) {
        if (t.rows.length === 0) continue;
        if (!next || t.seq < next.seq || (t.seq === next.seq && t.rows[0]!.id < next.rows[0]!.id)) next = t;
      }
      if (!next) break;
      out.push(toTask(next.rows.shift()!));
      next.seq = ++top;
    }
    return out;
  }

  private applyPatch(id: number, patch: TaskPatch, status?: TaskStatus): boolean {
    const sets: string[] = [];
    const values: unknown[] = [];
    if (status) {
      sets.push('status = ?');
      values.push(status);
      const field = STATUS_TIME_FIELD[status];
      if (field) {
        sets.push(`${field} = ?`);
        values.push(this.now());
      }
    }
    if (patch.appendOutput) {
      sets.push('debugoutput = debugoutput || ?');
      values.push(patch.appendOutput);
    }
    if (patch.debugerror !== undefined) {
      sets.push('debugerror = ?');
      values.push(patch.debugerror);
    }
    if (patch.pexit !== undefined) {
      sets.push('pexit = ?');
      values.push(patch.pexit);
    }
    if (patch.progress !== undefined) {
      sets.push('progress = ?');
      values.push(patch.progress === null ? null : JSON.stringify(patch.progress));
    }
    if (sets.length === 0) return true;
    const terminal = ['task_postprocess_end', 'task_cancel', 'task_error'].map((s) => `'${s}'`).join(', ');
    const info = this.sql(`UPDATE tasks SET ${sets.join(', ')} WHERE id = ? AND status NOT IN (${terminal})`).run(...values, id);
    return info.changes === 1;
  }

  async transition(id: number, status: TaskStatus, patch: TaskPatch = {}): Promise<TaskRecord | undefined> {
    if (!(await this.write(() => this.applyPatch(id, patch, status)))) return undefined;
    return toTask(this.stmt.taskById.get(id)!);
  }

  async patch(id: number, patch: TaskPatch): Promise<void> {
    await this.write(() => this.applyPatch(id, patch));
  }

  async finish(id: number, status: TaskStatus, patch: TaskPatch, outputs: FileRecord[]): Promise<TaskRecord | undefined> {
    if (!isTerminal(status)) throw new Error(`finish() needs a terminal status, got ${status}`);
    const run = this.db.transaction(() => {
      if (!this.applyPatch(id, patch, status)) return false;
      for (const f of outputs) this.stmt.insertFile.run(f);
      return true;
    });
    return (await this.write(run)) ? toTask(this.stmt.taskById.get(id)!) : undefined;
  }

  async cancelQueued(id: number): Promise<boolean> {
    // pexit "0", as the seed's Cancel example shows it.
    return (await this.write(() => this.sql("UPDATE tasks SET status = 'task_cancel', pexit = '0', canceltime = ? WHERE id = ? AND status = 'task_queue'")
      .run(this.now(), id))).changes === 1;
  }

  async requestKill(id: number): Promise<void> {
    await this.write(() => this.sql('UPDATE tasks SET kill_requested = 1 WHERE id = ?').run(id));
  }

  async recoverInFlight(reason: string): Promise<{ requeued: number[]; failed: TaskRecord[] }> {
    const recover = this.db.transaction(() => {
      const rows = this.sql<[], TaskRow>(
        "SELECT * FROM tasks WHERE status NOT IN ('task_queue', 'task_postprocess_end', 'task_cancel', 'task_error')").all();
      const requeued: number[] = [];
      const failed: number[] = [];
      for (const r of rows) {
        const status = r.status as TaskStatus;
        const crashes = (r.attempts ?? 0) + 1;
        if (BEFORE_RUN_STATUSES.has(status) && r.kill_requested === 0 && crashes < MAX_CRASHES) {
          this.sql(
            `UPDATE tasks SET status = 'task_queue', worker_id = NULL, accepttime = NULL, preprocessstarttime = NULL,
             preprocessendtime = NULL, assigntime = NULL, attempts = ?, debugoutput = debugoutput || ? WHERE id = ?`)
            .run(crashes, `${reason}: requeued before it started running.\n`, r.id);
          requeued.push(r.id);
        } else {
          const now = this.now();
          const why = crashes >= MAX_CRASHES && BEFORE_RUN_STATUSES.has(status)
            ? `${reason} during this task ${crashes} times; it is not retried again (the server stopped; not billed).`
            : `${reason} while this task was running; it did not finish (the server stopped; not billed). Run it again.`;
          this.sql(
            `UPDATE tasks SET status = 'task_postprocess_end', pexit = '1', debugerror = ?, postprocessendtime = ?,
             endtime = COALESCE(endtime, ?), progress = NULL, attempts = ? WHERE id = ?`)
            .run(why, now, now, crashes, r.id);
          this.sql("DELETE FROM files WHERE task_id = ? AND role = 'output'").run(r.id);
          failed.push(r.id);
        }
      }
      return { requeued, failed };
    });
    const { requeued, failed } = await this.write(recover);
    return { requeued, failed: failed.map((id) => toTask(this.stmt.taskById.get(id)!)) };
  }

  async setCallback(id: number, record: CallbackRecord): Promise<void> {
    await this.write(() => this.sql('UPDATE tasks SET callback = ? WHERE id = ?').run(JSON.stringify(record), id));
  }

  async listFiles(taskId: number, role?: FileRole): Promise<FileRecord[]> {
    const rows = role
      ? this.sql<[number, string], FileRow>('SELECT * FROM files WHERE task_id = ? AND role = ? ORDER BY rowid').all(taskId, role)
      : this.sql<[number], FileRow>('SELECT * FROM files WHERE task_id = ? ORDER BY rowid').all(taskId);
    return rows.map(toFile);
  }

  async findFile(accessKey: string, name: string): Promise<FileRecord | undefined> {
    const r = this.sql<[string, string], FileRow>('SELECT * FROM files WHERE access_key = ? AND name = ?').get(accessKey, name);
    return r && toFile(r);
  }

  async deleteTaskFiles(taskId: number): Promise<FileRecord[]> {
    const del = this.db.transaction(() => {
      const rows = this.sql<[number], FileRow>('SELECT * FROM files WHERE task_id = ?').all(taskId);
      this.sql('DELETE FROM files WHERE task_id = ?').run(taskId);
      this.sql('UPDATE tasks SET files_deleted_at = ? WHERE id = ?').run(this.now(), taskId);
      return rows.map(toFile);
    });
    return this.write(del);
  }

  async webhookSecret(projectId: number): Promise<string> {
    const row = this.sql<[number], { webhook_secret: string | null }>('SELECT webhook_secret FROM projects WHERE id = ?').get(projectId);
    if (!row) throw new Error(`no project with id ${projectId}`);
    if (row.webhook_secret) return row.webhook_secret;
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    await this.write(() => this.sql('UPDATE projects SET webhook_secret = COALESCE(webhook_secret, ?) WHERE id = ?').run(secret, projectId));
    return this.sql<[number], { webhook_secret: string }>('SELECT webhook_secret FROM projects WHERE id = ?').get(projectId)!.webhook_secret;
  }

  async enqueueCallback(item: { taskId: number; url: string; body: string; messageId: string }): Promise<void> {
    await this.write(() => this.sql('INSERT OR IGNORE INTO callback_outbox (task_id, url, body, message_id, next_at) VALUES (?, ?, ?, ?, ?)')
      .run(item.taskId, item.url, item.body, item.messageId, this.now()));
  }

  async dueCallbacks(limit: number): Promise<OutboxItem[]> {
    return this.sql<[number, number], { task_id: number; url: string; body: string; message_id: string; attempts: number; next_at: number }>(
      'SELECT * FROM callback_outbox WHERE done_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT ?').all(this.now(), limit)
      .map((r) => ({ taskId: r.task_id, url: r.url, body: r.body, messageId: r.message_id, attempts: r.attempts, nextAt: r.next_at }));
  }

  async nextCallbackAt(): Promise<number | undefined> {
    return this.sql<[], { at: number | null }>('SELECT MIN(next_at) AS at FROM callback_outbox WHERE done_at IS NULL').get()?.at ?? undefined;
  }

  async recordCallbackAttempt(taskId: number, record: CallbackRecord, next: { at: number } | 'done'): Promise<void> {
    await this.write(this.db.transaction(() => {
      this.sql('UPDATE callback_outbox SET attempts = ?, next_at = ?, done_at = ? WHERE task_id = ?')
        .run(record.attempts, next === 'done' ? this.now() : next.at, next === 'done' ? this.now() : null, taskId);
      this.sql('UPDATE tasks SET callback = ? WHERE id = ?').run(JSON.stringify(record), taskId);
    }));
  }

  async addFiles(files: FileRecord[]): Promise<void> {
    await this.write(this.db.transaction(() => {
      for (const f of files) this.stmt.insertFile.run(f);
    }));
  }

  async tasksToExpire(endedBefore: number, limit: number): Promise<number[]> {
    const terminal = "'task_postprocess_end', 'task_cancel', 'task_error'";
    return this.sql<[number, number], { id: number }>(
      `SELECT id FROM tasks WHERE status IN (${terminal}) AND files_deleted_at IS NULL
       AND COALESCE(postprocessendtime, canceltime, endtime, createtime) < ? ORDER BY id LIMIT ?`)
      .all(endedBefore, limit).map((r) => r.id);
  }

  // --- uploads (issue #12) ---

  async addUpload(u: UploadRecord): Promise<void> {
    await this.write(() => this.sql(
      `INSERT INTO uploads (id, project_id, name, content_type, size, path, access_key, added_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(u.id, u.projectId, u.name, u.contentType, u.size, u.path, u.accessKey, u.addedAt));
  }

  async findUpload(accessKey: string, name: string): Promise<UploadRecord | undefined> {
    const r = this.sql<[string, string], UploadRow>('SELECT * FROM uploads WHERE access_key = ? AND name = ?').get(accessKey, name);
    return r && toUpload(r);
  }

  async deleteUpload(projectId: number, id: string): Promise<UploadRecord | undefined> {
    const r = await this.write(() => this.sql<[string, number], UploadRow>('DELETE FROM uploads WHERE id = ? AND project_id = ? RETURNING *').get(id, projectId));
    return r && toUpload(r);
  }

  async pruneUploads(before: number): Promise<UploadRecord[]> {
    return (await this.write(() => this.sql<[number], UploadRow>('DELETE FROM uploads WHERE added_at < ? RETURNING *').all(before))).map(toUpload);
  }

  // --- replay protection (issue #12) ---

  async claimReplay(scope: string, ref: string, fingerprint: string, expiresAt: number): Promise<{ claimed: true } | { claimed: false; record: ReplayRecord }> {
    const claim = this.db.transaction(() => {
      const now = this.now();
      // An expired row is no claim: its request can no longer be replayed (its nonce is stale by now).
      this.sql('DELETE FROM replay_records WHERE scope = ? AND ref = ? AND expires_at < ?').run(scope, ref, now);
      const info = this.sql(
        `INSERT INTO replay_records (scope, ref, fingerprint, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (scope, ref) DO NOTHING`).run(scope, ref, fingerprint, now, expiresAt);
      if (info.changes === 1) return undefined;
      return this.sql<[string, string], ReplayRecord>(
        'SELECT fingerprint, status, response, created_at AS createdAt FROM replay_records WHERE scope = ? AND ref = ?').get(scope, ref);
    });
    const record = await this.write(() => claim.immediate());
    return record ? { claimed: false, record } : { claimed: true };
  }

  async completeReplay(scope: string, ref: string, status: number, response: string): Promise<void> {
    await this.write(() => this.sql('UPDATE replay_records SET status = ?, response = ? WHERE scope = ? AND ref = ?').run(status, response, scope, ref));
  }

  async releaseReplay(scope: string, ref: string): Promise<void> {
    await this.write(() => this.sql('DELETE FROM replay_records WHERE scope = ? AND ref = ? AND status IS NULL').run(scope, ref));
  }

  async pruneReplay(now: number): Promise<number> {
    return (await this.write(() => this.sql('DELETE FROM replay_records WHERE expires_at < ?').run(now))).changes;
  }

  async close(): Promise<void> {
    if (this.checkpointer) {
      const exited = new Promise((resolve) => this.checkpointer!.once('exit', resolve));
      this.checkpointer.ref(); // keep the loop alive until the thread has closed its connection
      this.checkpointer.postMessage('stop');
      await exited;
    }
    this.db.close();
  }
}
