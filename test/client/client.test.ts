// The client against a real service: run, wait (socket and polling), uploads, kill, cancel, detail, download.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { ApiError, LikenessClient, taskRef, type ProgressGenerate, type TaskEventFrame } from '../../src/client/index.js';
import { startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';

const FACE = 'https://images.example/face.png';
let s: TestService;
let client: LikenessClient;
let dir: string;

before(async () => {
  s = await startTestService();
  s.net.images.set(FACE, TINY_PNG);
  client = new LikenessClient({ baseUrl: s.url, apiKey: s.apiKey, apiSecret: s.apiSecret });
  dir = mkdtempSync(join(tmpdir(), 'likeness-client-'));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const fast = { pollInterval: () => 20 };

test('run answers a task id and token; wait follows it over the WebSocket with progress', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, mode: 'gate', steps: 3 });
  assert.match(queued.taskid, /^\d+$/);
  assert.equal(typeof queued.socketaccesstoken, 'string');
  const events: TaskEventFrame[] = [];
  const steps: ProgressGenerate[] = [];
  const done = client.wait(queued, { onEvent: (e) => events.push(e), onProgress: (p) => steps.push(p), timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  s.runner.release();
  const task = await done;
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '0');
  assert.deepEqual(task.outputs.map((o) => o.name), ['0.png', '1.png']);
  assert.ok(events.length > 0 && events.every((e) => !e.synthetic), 'every event came from the socket');
  const types = events.map((e) => e.type);
  assert.ok(types.indexOf('task_start') < types.indexOf('task_output'), types.join(' '));
  assert.equal(types.at(-1), 'task_postprocess_end');
  assert.deepEqual(steps.map((p) => `${p.stepCurrent}/${p.stepTotal}`), ['1/3', '2/3', '3/3']);
  assert.equal(steps[0]!.type, 'progressGenerate');
});

test('wait falls back to polling Task/Detail when the socket URL is wrong', async () => {
  const broken = new LikenessClient({ baseUrl: s.url, apiKey: s.apiKey, apiSecret: s.apiSecret, socketUrl: 'ws://127.0.0.1:1/v1' });
  const queued = await broken.run('test', 'scripted', { inputImageUrl: FACE, steps: 2 });
  const events: TaskEventFrame[] = [];
  const task = await broken.wait(queued.taskid, { ...fast, onEvent: (e) => events.push(e), timeoutMs: 10_000 });
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.outputs.length, 2);
  assert.ok(events.every((e) => e.synthetic), 'events were made up from polls');
  assert.equal(events.at(-1)!.type, 'task_postprocess_end');
});

test('wait falls back to polling when the socket closes before the task ends', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => ws.on('message', () => ws.close()));
  await new Promise((r) => wss.once('listening', r));
  try {
    const port = (wss.address() as { port: number }).port;
    const flaky = new LikenessClient({ baseUrl: s.url, apiKey: s.apiKey, apiSecret: s.apiSecret, socketUrl: `ws://127.0.0.1:${port}/v1` });
    const queued = await flaky.run('test', 'scripted', { inputImageUrl: FACE, steps: 2 });
    const task = await flaky.wait(queued, { ...fast, timeoutMs: 10_000 });
    assert.equal(task.status, 'task_postprocess_end');
  } finally {
    await new Promise((r) => wss.close(r));
  }
});

test('wait rejects with WaitTimeoutError when the task outlives timeoutMs', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, mode: 'gate', steps: 1 });
  await assert.rejects(client.wait(queued, { timeoutMs: 150 }), { name: 'WaitTimeoutError' });
  s.runner.release();
  await client.wait(queued, { timeoutMs: 10_000 });
});

test('a file uploads as multipart/form-data and the task sees its stored URL', async () => {
  const path = join(dir, 'face.png');
  writeFileSync(path, TINY_PNG);
  for (const file of [TINY_PNG, { path }, new Blob([TINY_PNG], { type: 'image/png' })]) {
    const queued = await client.run('test', 'scripted', { steps: 1 }, { inputImage: file });
    const task = await client.wait(queued, { timeoutMs: 10_000 });
    assert.equal(task.status, 'task_postprocess_end');
    const url = task.parameters.inputImage as string;
    assert.ok(url.startsWith(`${s.url}/v1/File/`), url);
    assert.deepEqual(Buffer.from(await (await fetch(url)).arrayBuffer()), TINY_PNG);
  }
});

test('a refused Run throws ApiError with Wiro\'s code and message, and is not retried', async () => {
  const err = await client.run('test', 'scripted', { steps: 1 }, { inputImage: Buffer.from('not an image at all') }).catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.httpStatus, 200);
  assert.equal(err.code, 0);
  assert.match(err.message, /Request files \[inputImage\]/);
  const bad = await client.run('test', 'scripted', { steps: 500 }).catch((e: unknown) => e);
  assert.ok(bad instanceof ApiError);
  assert.match(bad.errors[0]!.message, /must be between 1 and 100/);
});

test('a wrong secret is an ApiError with HTTP 401', async () => {
  const wrong = new LikenessClient({ baseUrl: s.url, apiKey: s.apiKey, apiSecret: 'not-the-secret' });
  const err = await wrong.detail({ taskid: 1 }).catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.httpStatus, 401);
  assert.match(err.message, /x-signature does not match/);
});

test('many concurrent requests from two clients with one key never reuse a nonce', async () => {
  const other = new LikenessClient({ baseUrl: s.url, apiKey: s.apiKey, apiSecret: s.apiSecret, maxRetries: 0 });
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, steps: 1 });
  const reads = Array.from({ length: 60 }, (_, i) => (i % 2 ? client : other).detail({ taskid: queued.taskid }));
  const tasks = await Promise.all(reads);
  assert.ok(tasks.every((t) => t.id === queued.taskid));
  await client.wait(queued, { timeoutMs: 10_000 });
});

test('detail by token answers the same task as by id; an unknown task is code 1', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, steps: 1 });
  const byToken = await client.detail({ tasktoken: queued.socketaccesstoken });
  const byId = await client.detail(taskRef(queued.taskid));
  assert.equal(byToken.id, queued.taskid);
  assert.equal(byId.socketaccesstoken, queued.socketaccesstoken);
  const missing = await client.detail({ tasktoken: 'no-such-token' }).catch((e: unknown) => e);
  assert.ok(missing instanceof ApiError);
  assert.equal(missing.code, 1);
  await client.wait(queued.socketaccesstoken, { timeoutMs: 10_000 });
});

test('kill stops a running task: it ends as task_cancel without outputs', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, mode: 'slow', steps: 50 });
  let killed: Promise<unknown> | undefined;
  const task = await client.wait(queued, {
    timeoutMs: 10_000,
    onProgress: () => {
      killed ??= client.kill({ taskid: queued.taskid });
    },
  });
  assert.equal(task.status, 'task_cancel');
  assert.deepEqual(task.outputs, []);
  assert.equal(((await killed) as { status: string }).status, 'task_cancel');
});

test('cancel removes a queued task; a second cancel says it is not cancellable', async () => {
  const blocker = await client.run('test', 'scripted', { inputImageUrl: FACE, mode: 'gate', steps: 1 });
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, steps: 1 });
  const cancelled = await client.cancel({ tasktoken: queued.socketaccesstoken });
  assert.equal(cancelled.status, 'task_cancel');
  const again = await client.cancel({ taskid: queued.taskid }).catch((e: unknown) => e);
  assert.ok(again instanceof ApiError);
  assert.equal(again.code, 1);
  assert.match(again.message, /not in a cancellable state/);
  s.runner.release();
  assert.equal((await client.wait(blocker, { timeoutMs: 10_000 })).status, 'task_postprocess_end');
  assert.equal((await client.wait(queued, { timeoutMs: 10_000 })).status, 'task_cancel');
});

test('download writes every output under the folder with safe, distinct names', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, steps: 1 });
  const task = await client.wait(queued, { timeoutMs: 10_000 });
  const out = join(dir, 'out');
  const saved = await client.download(task, out);
  assert.deepEqual(readdirSync(out).sort(), ['0.png', '1.png']);
  for (const f of saved) assert.deepEqual(readFileSync(f.path), TINY_PNG);

  // Names chosen by a hostile server stay inside the folder and never overwrite each other.
  const url = task.outputs[0]!.url;
  const evil = { outputs: [{ name: '../../escape.png', url, contenttype: 'image/png', size: '1' }, { name: 'escape.png', url, contenttype: 'image/png', size: '1' }, { name: '..', url, contenttype: 'image/png', size: '1' }] };
  const hostile = join(dir, 'hostile');
  const files = await client.download(evil, hostile);
  assert.deepEqual(readdirSync(hostile).sort(), ['escape-2.png', 'escape.png', 'output-2.png']);
  assert.ok(files.every((f) => f.path.startsWith(hostile)));
});

test('list pages the project\'s tasks newest first; toolDetail answers the tool', async () => {
  const page = await client.list({ start: 0, limit: 2 });
  assert.ok(page.total >= 2);
  assert.equal(page.tasks.length, 2);
  assert.ok(Number(page.tasks[0]!.id) > Number(page.tasks[1]!.id));
  const tool = await client.toolDetail('test', 'scripted');
  assert.equal(tool.slugowner, 'test');
  assert.equal(tool.slugproject, 'scripted');
  const err = await client.toolDetail('test', 'nope').catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 1);
});

test('a task already finished resolves wait at once from Task/Detail', async () => {
  const queued = await client.run('test', 'scripted', { inputImageUrl: FACE, steps: 1 });
  await waitForTerminal(s, queued.taskid);
  const task = await client.wait(Number(queued.taskid), { timeoutMs: 2_000 });
  assert.equal(task.status, 'task_postprocess_end');
});
