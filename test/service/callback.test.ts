// callbackUrl through the real guarded network: the final task object is POSTed to a local receiver,
// retried after a failure, and the delivery is recorded without changing the task.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestService, waitForTerminal, TINY_PNG, scriptedTool, ScriptedRunner, type TestService } from '../helpers/service.js';
import { startServer, type TestServer } from '../net/helpers.js';

let s: TestService;
let receiver: TestServer;
let failuresLeft = 0;
before(async () => {
  receiver = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(TINY_PNG),
    '/hook': (_q, res) => {
      if (failuresLeft > 0) {
        failuresLeft--;
        res.writeHead(503).end('busy');
      } else res.writeHead(200).end('ok');
    },
    '/always-down': (_q, res) => res.writeHead(500).end('down'),
  });
  s = await startTestService({ tools: [scriptedTool(new ScriptedRunner())], realNetwork: true, config: { fetchAllow: ['127.0.0.1'], callbackMaxAttempts: 3, callbackBackoffBaseMs: 20 } });
});
after(async () => {
  await s.close();
  await receiver.close();
});

async function runWithCallback(path: string): Promise<Record<string, unknown>> {
  const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: receiver.url('/face.png'), callbackUrl: receiver.url(path) });
  const task = await waitForTerminal(s, json.taskid as string);
  await s.service.callbacks.idle();
  return task;
}

test('the callback receives the final task object, after one failed attempt is retried', async () => {
  failuresLeft = 1;
  const task = await runWithCallback('/hook');
  const posts = receiver.requests.filter((r) => r.path === '/hook');
  assert.equal(posts.length, 2);
  const body = JSON.parse(posts[1]!.body.toString()) as Record<string, unknown>;
  assert.equal(posts[1]!.headers['content-type'], 'application/json');
  assert.equal(body.id, task.id);
  assert.equal(body.status, 'task_postprocess_end');
  assert.equal(body.pexit, '0');
  const record = (await s.service.ctx.store.getTaskById(Number(task.id)))!.callback!;
  assert.deepEqual([record.ok, record.attempts, record.lastStatus], [true, 2, 200]);
  const detail = ((await s.post('/v1/Task/Detail', { taskid: task.id })).json.tasklist as Record<string, unknown>[])[0]!;
  assert.deepEqual((detail.callbackdelivery as { ok: boolean; attempts: number }).attempts, 2);
});

test('a receiver that stays down is recorded as a failed delivery; the task is unchanged', async () => {
  const task = await runWithCallback('/always-down');
  const stored = (await s.service.ctx.store.getTaskById(Number(task.id)))!;
  assert.equal(stored.status, 'task_postprocess_end');
  assert.equal(stored.pexit, '0');
  assert.equal(stored.callback!.ok, false);
  assert.equal(stored.callback!.attempts, 3);
  assert.equal(stored.callback!.lastStatus, 500);
});
