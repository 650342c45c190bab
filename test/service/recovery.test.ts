// Crash safety: after the process dies mid-task, the next start requeues tasks that had not started
// running, fails those that had (with a debugerror saying so), and keeps every finished task's files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestService, waitForTerminal, TINY_PNG, FakeNetwork } from '../helpers/service.js';

test('a restart fails the running task, requeues the accepted one, and loses no finished output', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-crash-'));
  const net = new FakeNetwork();
  net.images.set('https://images.example/face.png', TINY_PNG);
  try {
    // First life: one task finishes; then the process "dies" with one task running and one just accepted.
    const first = await startTestService({ home, network: net });
    const done = (await first.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' })).json.taskid as string;
    const finished = await waitForTerminal(first, done);
    await first.service.worker.stop();
    const store = first.service.ctx.store;
    const running = (await first.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' })).json.taskid as string;
    const accepted = (await first.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' })).json.taskid as string;
    const r = (await store.claimNext('dead-worker'))!;
    assert.equal(String(r.id), running);
    for (const status of ['task_preprocess_start', 'task_preprocess_end', 'task_assign', 'task_start', 'task_output'] as const) await store.transition(r.id, status);
    assert.equal(String((await store.claimNext('dead-worker'))!.id), accepted);
    await first.service.server.close();
    await store.close(); // the worker never gets to finish either task
    // A dead process's lock is stale by its pid; this "crash" happens inside the test's own process.
    first.service.homeLock.release();

    // Second life on the same data folder.
    const second = await startTestService({ home, network: net });
    try {
      const failed = await waitForTerminal(second, running);
      assert.equal(failed.status, 'task_postprocess_end');
      assert.equal(failed.pexit, '1');
      assert.match(failed.debugerror as string, /Likeness stopped .* while this task was running/);
      assert.deepEqual(failed.outputs, []);

      const requeued = await waitForTerminal(second, accepted);
      assert.equal(requeued.status, 'task_postprocess_end');
      assert.equal(requeued.pexit, '0');
      assert.match(requeued.debugoutput as string, /requeued before it started running/);

      const again = (await second.post('/v1/Task/Detail', { taskid: done })).json.tasklist as Record<string, unknown>[];
      const outputs = again[0]!.outputs as { url: string; name: string }[];
      assert.deepEqual(outputs.map((o) => o.name), (finished.outputs as { name: string }[]).map((o) => o.name));
      for (const o of outputs) assert.equal((await fetch(o.url)).status, 200);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
