// F1: another process holding SQLite's write lock while a task runs. The server must keep answering,
// never exit, and the task must end in exactly one terminal state: finished when the lock is released
// within LIKENESS_DB_BUSY_MS, failed cleanly (pexit 1, not billed) when it is held longer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestService, waitForTerminal, TINY_PNG, FakeNetwork } from '../helpers/service.js';

const URL = 'https://images.example/face.png';

/** A second connection (as another process would) that takes the write lock and holds it for `ms`. */
function holdWriteLock(home: string, ms: number): Promise<void> {
  const db = new Database(join(home, 'likeness.db'));
  db.exec('BEGIN IMMEDIATE');
  return new Promise((resolve) => setTimeout(() => {
    db.exec('COMMIT');
    db.close();
    resolve();
  }, ms));
}

test('a lock held for less than the retry window delays the task, which then finishes; requests keep being answered', async () => {
  const net = new FakeNetwork();
  net.images.set(URL, TINY_PNG);
  const s = await startTestService({ network: net, config: { dbBusyRetryMs: 5000 } });
  try {
    s.runner.stepDelayMs = 20;
    const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: URL, mode: 'slow', steps: 6 });
    const released = holdWriteLock(s.home, 700);
    // Reads are not blocked by a writer in WAL mode: Detail answers while the lock is held.
    const t0 = Date.now();
    const detail = await s.post('/v1/Task/Detail', { taskid: json.taskid });
    assert.equal(detail.status, 200);
    assert.ok(Date.now() - t0 < 500, `Detail took ${Date.now() - t0} ms under a held lock`);
    await released;
    const task = await waitForTerminal(s, json.taskid as string);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '0', String(task.debugerror));
  } finally {
    await s.close();
  }
});

test('a lock held past the retry window fails that task cleanly (pexit 1, cost 0) and answers a Run with 503, never crashing', async () => {
  const net = new FakeNetwork();
  net.images.set(URL, TINY_PNG);
  const s = await startTestService({ network: net, config: { dbBusyRetryMs: 200 } });
  try {
    s.runner.stepDelayMs = 40;
    const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: URL, mode: 'slow', steps: 3 });
    // Wait until it runs, then lock the database for far longer than the 200 ms the server waits.
    for (let i = 0; i < 100; i++) {
      const t = (await s.post('/v1/Task/Detail', { taskid: json.taskid })).json.tasklist as { status: string }[];
      if (t[0]!.status === 'task_output') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const released = holdWriteLock(s.home, 1500);
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${s.url}/v1/Run/test/scripted`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...s.signedHeaders() }, body: JSON.stringify({ inputImageUrl: URL }),
    });
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    const body = (await res.json()) as { result: boolean; errors: { message: string }[] };
    assert.equal(body.result, false);
    assert.match(body.errors[0]!.message, /database .*locked/i);
    await released;
    const task = await waitForTerminal(s, json.taskid as string);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '1');
    assert.match(String(task.debugerror), /locked by another process/);
    assert.equal(Number(task.totalcost), 0);
    // The server is still there and works.
    const next = await s.post('/v1/Run/test/scripted', { inputImageUrl: URL });
    assert.equal(next.json.result, true);
    assert.equal((await waitForTerminal(s, next.json.taskid as string)).pexit, '0');
  } finally {
    await s.close();
  }
});

test('a signed Run and a File/Upload sent while another process holds the lock wait for it and then succeed', async () => {
  const net = new FakeNetwork();
  net.images.set(URL, TINY_PNG);
  const s = await startTestService({ network: net, config: { dbBusyRetryMs: 5000 } });
  try {
    // Both write before they act: the replay record of the signed call, then the task or the upload.
    const released = holdWriteLock(s.home, 600);
    const form = new FormData();
    form.append('file', new Blob([TINY_PNG]), 'face.png');
    const [run, upload] = await Promise.all([
      s.post('/v1/Run/test/scripted', { inputImageUrl: URL }),
      fetch(`${s.url}/v1/File/Upload`, { method: 'POST', headers: s.signedHeaders(), body: form }).then(async (r) => ({ status: r.status, json: (await r.json()) as { result: boolean } })),
    ]);
    await released;
    assert.equal(run.status, 200, JSON.stringify(run.json));
    assert.equal(run.json.result, true);
    assert.equal(upload.status, 200, JSON.stringify(upload.json));
    assert.equal(upload.json.result, true);
    assert.equal((await waitForTerminal(s, run.json.taskid as string)).pexit, '0');
  } finally {
    await s.close();
  }
});
