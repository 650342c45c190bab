// n8n-nodes-wiroai's Instant Id Controlnet Lora node against a real server: it signs once per execution with a
// seconds nonce, sends every field (untouched ones as 0 or ""), and polls Task/Detail with the same headers
// until task_postprocess_end or task_cancel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestService, type TestService, TINY_PNG } from '../helpers/service.js';
import { n8nDefaultBody, n8nHeaders, n8nRun, NO_FACE_PNG, StandInEngine, standInTool } from './clients.js';

let s: TestService;
before(async () => {
  s = await startTestService({ tools: [standInTool(new StandInEngine())] });
  s.net.images.set('https://images.example/face.png', TINY_PNG);
  s.net.images.set('https://images.example/rocket.png', NO_FACE_PNG);
});
after(async () => s.close());

/**
 * One n8n execution per second per credential: its seconds nonce signs one acting call (Run) per second, so
 * two executions that start in the same second with different bodies cannot both run (the third test says
 * what the second is told). Real executions poll every 20 s; here each test starts on a fresh second.
 */
async function freshSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
}

const detail = async (taskid: string) => ((await s.post('/v1/Task/Detail', { taskid })).json.tasklist as Record<string, unknown>[])[0]!;

test('one signature for Run and every poll: the node left at its defaults completes with the output URL', async () => {
  await freshSecond();
  const headers = n8nHeaders(s.apiKey, s.apiSecret);
  const { taskid, result, polls } = await n8nRun(s.url, headers, n8nDefaultBody({ inputImageUrl: 'https://images.example/face.png', prompt: 'a portrait' }));
  assert.ok(polls >= 1);
  assert.match(result, /\/v1\/File\/[A-Za-z0-9]{30}\/0\.png$/, `the node reports the output URL, got ${result}`);
  assert.equal((await fetch(result)).status, 200);
  const task = await detail(taskid);
  assert.equal(task.pexit, '0');
  assert.match(String(task.debugoutput), /steps 0 means the default: 20 used/);
  assert.match(String(task.debugoutput), /samples 0 means the default: 1 used/);
});

test('a photo with no face: the node stops at task_postprocess_end (its "-3") and Detail has the reason', async () => {
  await freshSecond();
  const started = Date.now();
  const { taskid, result } = await n8nRun(s.url, n8nHeaders(s.apiKey, s.apiSecret), n8nDefaultBody({ inputImageUrl: 'https://images.example/rocket.png', prompt: 'x' }));
  assert.equal(result, '-3');
  assert.ok(Date.now() - started < 60_000);
  const task = await detail(taskid);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(String(task.debugerror), /no face detected in inputImage \(a \d+-byte photo\)/);
  assert.equal(task.totalcost, '0');
});

test('seconds nonces twice in a second: reads pass, the same Run again is the same task, another Run body is refused saying why', async () => {
  await freshSecond();
  const headers = n8nHeaders(s.apiKey, s.apiSecret);
  const body = n8nDefaultBody({ inputImageUrl: 'https://images.example/face.png', prompt: 'twice' });
  const post = (path: string, b: unknown) => fetch(`${s.url}${path}`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(b) });
  const first = (await (await post('/v1/Run/wiro/instant-id-controlnet-lora', body)).json()) as Record<string, unknown>;
  const again = (await (await post('/v1/Run/wiro/instant-id-controlnet-lora', body)).json()) as Record<string, unknown>;
  assert.equal(again.taskid, first.taskid, 'an exact repeat acts once');
  for (let i = 0; i < 2; i++) assert.equal((await post('/v1/Task/Detail', { taskid: first.taskid })).status, 200);
  const other = await post('/v1/Run/wiro/instant-id-controlnet-lora', { ...body, prompt: 'something else' });
  assert.equal(other.status, 401);
  assert.match(JSON.stringify(await other.json()), /already used with this API key for a different request/);
});

test('the credentials test (x-api-key alone, Task/Detail of "test") passes for an API-key-only project', async () => {
  const p = await s.service.ctx.store.createProject('n8n-keyonly', 'apikey');
  const k = await s.service.ctx.store.createKey(p.id);
  const res = await fetch(`${s.url}/v1/Task/Detail`, { method: 'POST', headers: { 'x-api-key': k.apiKey, 'Content-Type': 'application/json' }, body: JSON.stringify({ tasktoken: 'test' }) });
  assert.equal(res.status, 200, 'n8n counts any 2xx as a working credential');
  // A signature project needs a signature on every call, the test's included: it answers 401 (README says so).
  const signed = await fetch(`${s.url}/v1/Task/Detail`, { method: 'POST', headers: { 'x-api-key': s.apiKey, 'Content-Type': 'application/json' }, body: JSON.stringify({ tasktoken: 'test' }) });
  assert.equal(signed.status, 401);
});
