// F12 and F16: stopping and crashing never bill a task the server failed to finish. SIGTERM's path
// (Service.shutdown) lets a task finish within the grace period, then fails it "the server stopped; not
// billed" (pexit 1, cost 0, never task_cancel) — also when the runner ignores the abort. A task that was
// in flight when the process died twice is failed, not requeued a third time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestService, waitForTerminal, type TestService } from '../helpers/service.js';

async function untilStatus(s: TestService, taskid: string, status: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await s.service.ctx.store.getTaskById(Number(taskid)))?.status === status) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`task ${taskid} never reached ${status}`);
}

/** Stops `first` with shutdown(), reopens the same home and returns the task as Task/Detail shows it. */
async function afterShutdown(home: string, run: (s: TestService) => Promise<string>, graceMs: number, abortWaitMs: number) {
  const first = await startTestService({ home });
  const taskid = await run(first);
  const t0 = Date.now();
  await first.service.shutdown(graceMs, abortWaitMs);
  const took = Date.now() - t0;
  const second = await startTestService({ home });
  try {
    return { task: await waitForTerminal(second, taskid), took };
  } finally {
    await second.close();
  }
}

test('a task that finishes within the grace period is not disturbed by the shutdown', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-stop-'));
  try {
    const { task } = await afterShutdown(home, async (s) => {
      s.runner.stepDelayMs = 10;
      const id = (await s.post('/v1/Run/test/scripted', { mode: 'slow', steps: 3 })).json.taskid as string;
      await untilStatus(s, id, 'task_output');
      return id;
    }, 3000, 1000);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '0');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a task longer than the grace period is failed "the server stopped; not billed": pexit 1, cost 0, not task_cancel', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-stop-'));
  try {
    const { task, took } = await afterShutdown(home, async (s) => {
      s.runner.stepDelayMs = 40;
      const id = (await s.post('/v1/Run/test/scripted', { mode: 'slow', steps: 50 })).json.taskid as string;
      await untilStatus(s, id, 'task_output');
      return id;
    }, 150, 2000);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '1');
    assert.match(String(task.debugerror), /the server stopped; not billed/);
    assert.equal(Number(task.totalcost), 0);
    assert.ok(took < 1500, `shutdown took ${took} ms`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a runner that ignores the abort does not hold the shutdown: its task is ended as not billed', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-stop-'));
  try {
    const { task, took } = await afterShutdown(home, async (s) => {
      const id = (await s.post('/v1/Run/test/scripted', { mode: 'gate' })).json.taskid as string; // never released
      await untilStatus(s, id, 'task_start');
      return id;
    }, 100, 200);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '1');
    assert.match(String(task.debugerror), /not billed/);
    assert.ok(took < 1500, `shutdown took ${took} ms`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a task in flight at two process deaths is failed at the next start, not requeued a third time', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-crash2-'));
  try {
    let taskid = '';
    for (let life = 1; life <= 3; life++) {
      const s = await startTestService({ home, worker: false });
      if (life === 1) taskid = (await s.post('/v1/Run/test/scripted', { mode: 'ok' })).json.taskid as string;
      const store = s.service.ctx.store;
      const task = (await store.getTaskById(Number(taskid)))!;
      if (life === 3) {
        assert.equal(task.status, 'task_postprocess_end');
        assert.equal(task.pexit, '1');
        assert.match(task.debugerror, /2 times; it is not retried again/);
        await s.close();
        break;
      }
      // The task is queued again (life 2: requeued once); it gets as far as preprocessing, then the process dies.
      assert.equal(task.status, 'task_queue');
      assert.equal((await store.claimNext('doomed'))!.id, Number(taskid));
      await store.transition(Number(taskid), 'task_preprocess_start');
      await s.service.server.close();
      await store.close();
      s.service.homeLock.release(); // a dead process's lock is stale by its pid; this one dies inside the test
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
