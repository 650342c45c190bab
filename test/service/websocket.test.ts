// The WebSocket: {"type":"task_info","tasktoken":…} in; every status as {type, id, tasktoken, message, result}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';

let s: TestService;
before(async () => {
  s = await startTestService();
  s.net.images.set('https://images.example/face.png', TINY_PNG);
});
after(async () => s.close());

function subscribe(token: string): { frames: Record<string, unknown>[]; done: Promise<void>; ws: WebSocket } {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v1`);
  const frames: Record<string, unknown>[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'task_info', tasktoken: token })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Record<string, unknown>;
      frames.push(f);
      if (f.type === 'task_postprocess_end' || f.type === 'task_cancel') { // Wiro's terminal statuses
        ws.close();
        resolve();
      }
    });
    ws.on('error', reject);
  });
  return { frames, done, ws };
}

test('a subscriber sees every status in order, progress as progressGenerate, outputs at the end', async () => {
  const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png', mode: 'gate', steps: 3 });
  const sub = subscribe(json.socketaccesstoken as string);
  await new Promise((r) => setTimeout(r, 100));
  s.runner.release();
  await sub.done;
  const types = sub.frames.map((f) => f.type);
  const order = ['task_start', 'task_output', 'task_output_full', 'task_end', 'task_postprocess_start', 'task_postprocess_end'];
  let at = -1;
  for (const t of order) {
    const i = types.indexOf(t, at + 1);
    assert.ok(i > at, `${t} after ${order[order.indexOf(t) - 1]} in ${types.join(' ')}`);
    at = i;
  }
  for (const f of sub.frames) {
    assert.equal(f.id, json.taskid);
    assert.equal(f.tasktoken, json.socketaccesstoken);
    assert.equal(f.result, true);
  }
  const progress = sub.frames.filter((f) => f.type === 'task_output').map((f) => f.message as Record<string, string>);
  assert.deepEqual(progress.map((p) => p.stepCurrent), ['1', '2', '3']);
  for (const p of progress) {
    assert.equal(p.type, 'progressGenerate');
    assert.equal(p.stepTotal, '3');
    for (const k of ['task', 'percentage', 'speed', 'speedType', 'elapsedTime', 'remainingTime']) assert.equal(typeof p[k], 'string', k);
  }
  const last = sub.frames.at(-1)!;
  assert.equal(last.type, 'task_postprocess_end');
  assert.equal(last.pexit, '0');
  assert.equal(last.status, 'task_postprocess_end');
  assert.deepEqual((last.message as { name: string }[]).map((o) => o.name), ['0.png', '1.png']);
});

test('a late subscriber first receives the current status', async () => {
  const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' });
  await waitForTerminal(s, json.taskid as string);
  const sub = subscribe(json.socketaccesstoken as string);
  await sub.done;
  assert.equal(sub.frames.length, 1);
  assert.equal(sub.frames[0]!.type, 'task_postprocess_end');
  assert.equal((sub.frames[0]!.message as unknown[]).length, 2);
});

test('an unknown token gets an error frame, not a hang', async () => {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v1`);
  const frame = await new Promise<Record<string, unknown>>((resolve) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'task_info', tasktoken: 'nope' })));
    ws.on('message', (d) => resolve(JSON.parse(String(d)) as Record<string, unknown>));
  });
  ws.close();
  assert.equal(frame.result, false);
});

test('a failure is a task_error frame with the reason, then task_postprocess_end with pexit "1" as the last word', async () => {
  const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png', mode: 'fail-pre' });
  const sub = subscribe(json.socketaccesstoken as string);
  await sub.done;
  const last = sub.frames.at(-1)!;
  assert.equal(last.type, 'task_postprocess_end');
  assert.equal(last.pexit, '1');
  assert.deepEqual(last.message, [], 'no outputs: WiroKit reads this message as the output list');
  assert.match(String(last.debugerror), /no face detected/);
  const error = sub.frames.find((f) => f.type === 'task_error');
  if (error) assert.match(String(error.message), /no face detected/); // a late subscriber sees only the end
  const task = await waitForTerminal(s, json.taskid as string);
  assert.equal(task.status, 'task_postprocess_end');
});
