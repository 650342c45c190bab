// F14: a task_info sent many times quickly on one socket registers once (each event is one frame), and
// one socket can follow at most MAX_SUBSCRIPTIONS_PER_SOCKET tasks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { MAX_SUBSCRIPTIONS_PER_SOCKET } from '../../src/service/routes/socket.js';
import { startTestService, waitForTerminal, type TestService } from '../helpers/service.js';

let s: TestService;
before(async () => {
  s = await startTestService();
});
after(async () => s.close());

function openSocket(): Promise<{ ws: WebSocket; frames: Record<string, unknown>[] }> {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v1`);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, frames }));
    ws.on('error', reject);
  });
}

test('500 quick duplicates of one task_info give one frame per event, not 500', async () => {
  const { json } = await s.post('/v1/Run/test/scripted', { mode: 'gate', steps: 3 });
  const { ws, frames } = await openSocket();
  const hello = JSON.stringify({ type: 'task_info', tasktoken: json.socketaccesstoken });
  for (let i = 0; i < 500; i++) ws.send(hello);
  await new Promise((r) => setTimeout(r, 200));
  s.runner.release();
  await waitForTerminal(s, json.taskid as string);
  await new Promise((r) => setTimeout(r, 100));
  ws.close();
  const ends = frames.filter((f) => f.type === 'task_postprocess_end');
  assert.equal(ends.length, 1, `${ends.length} end frames`);
  const progress = frames.filter((f) => f.type === 'task_output');
  assert.ok(progress.length <= 3, `${progress.length} progress frames for 3 steps`);
});

test(`a socket can follow ${MAX_SUBSCRIPTIONS_PER_SOCKET} tasks; the next is refused with a clear error`, async () => {
  const tokens: string[] = [];
  for (let i = 0; i <= MAX_SUBSCRIPTIONS_PER_SOCKET; i++) {
    const { json } = await s.post('/v1/Run/test/scripted', { mode: 'ok', steps: 1 });
    tokens.push(json.socketaccesstoken as string);
  }
  const { ws, frames } = await openSocket();
  for (const t of tokens.slice(0, -1)) ws.send(JSON.stringify({ type: 'task_info', tasktoken: t }));
  await new Promise((r) => setTimeout(r, 300));
  ws.send(JSON.stringify({ type: 'task_info', tasktoken: tokens.at(-1) }));
  await new Promise((r) => setTimeout(r, 200));
  ws.close();
  const refusal = frames.find((f) => f.type === 'error' && f.tasktoken === tokens.at(-1));
  assert.ok(refusal, 'the subscription over the cap was not refused');
  assert.match(String(refusal.message), new RegExp(`already follows ${MAX_SUBSCRIPTIONS_PER_SOCKET} tasks`));
  const followed = new Set(frames.filter((f) => f.result === true).map((f) => f.tasktoken));
  assert.equal(followed.size, MAX_SUBSCRIPTIONS_PER_SOCKET);
});
