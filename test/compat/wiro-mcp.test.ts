// Wiro-MCP's WiroClient against a real server: Date.now() nonces signed per request, any non-2xx thrown,
// waitForTask polling until task_postprocess_end or task_cancel only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestService, type TestService, TINY_PNG } from '../helpers/service.js';
import { McpClient, NO_FACE_PNG, StandInEngine, standInTool } from './clients.js';

const MODEL = 'wiro/instant-id-controlnet-lora';
const FACE = 'https://images.example/face.png';
let s: TestService;
let mcp: McpClient;
before(async () => {
  s = await startTestService({ tools: [standInTool(new StandInEngine())] });
  s.net.images.set(FACE, TINY_PNG);
  mcp = new McpClient(s.apiKey, s.apiSecret, `${s.url}/v1`); // WIRO_API_BASE_URL
});
after(async () => s.close());

test('search, explore and schema answer in the shapes the MCP tools read', async () => {
  const list = await mcp.searchModels();
  assert.deepEqual((list.tool as { slugproject: string }[]).map((t) => t.slugproject), ['instant-id-controlnet-lora']);
  const { explore } = await mcp.explore();
  assert.ok(explore.length > 0);
  for (const c of explore) {
    assert.equal(typeof c.id, 'string');
    assert.equal(typeof c.title, 'string');
    assert.deepEqual(c.tools.map((t) => `${t.cleanslugowner}/${t.cleanslugproject}`), [MODEL]);
  }
  const schema = await mcp.getModelSchema(MODEL);
  const items = (schema.tool as { parameters: { items: { id: string }[] }[] }[])[0]!.parameters.flatMap((g) => g.items.map((i) => i.id));
  assert.ok(items.includes('inputImage') && items.includes('steps'));
});

test('upload_file, then run_model with the returned URL, then wait_for_task: outputs at task_postprocess_end', async () => {
  const up = await mcp.uploadFile(TINY_PNG, 'me.png');
  assert.equal(up.result, true);
  const file = up.list[0]!;
  assert.equal(file.contenttype, 'image/png');
  assert.equal(file.size, String(TINY_PNG.length));
  assert.deepEqual(Buffer.from(await (await fetch(file.url)).arrayBuffer()), TINY_PNG);
  const run = await mcp.runModel(MODEL, { inputImageUrl: file.url, prompt: 'a portrait', steps: 3 });
  assert.equal(run.result, true);
  const task = await mcp.waitForTask(run.socketaccesstoken);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '0', String(task.debugerror));
  assert.equal((task.outputs as unknown[]).length, 1);
});

test('a no-face photo: wait_for_task returns (no 10-minute hang) with pexit "1" and the reason', async () => {
  const up = await mcp.uploadFile(NO_FACE_PNG, 'rocket.png');
  const run = await mcp.runModel(MODEL, { inputImageUrl: up.list[0]!.url, prompt: 'x' });
  const task = await mcp.waitForTask(run.socketaccesstoken, 60_000);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(String(task.debugerror), /no face detected/);
});

test('10 parallel runs with Date.now() nonces: every call is answered, colliding nonces as the rules say', async () => {
  const calls = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => mcp.runModel(MODEL, { inputImageUrl: FACE, prompt: `portrait ${i}`, steps: 2 })));
  // Calls that start in the same millisecond share a nonce; the first acts, the others (another body) are told why.
  const refused = calls.filter((c) => c.status === 'rejected').map((c) => String((c as PromiseRejectedResult).reason));
  for (const r of refused) assert.match(r, /Wiro API error 401: .*already used with this API key for a different request/);
  const ran = calls.filter((c) => c.status === 'fulfilled').map((c) => (c as PromiseFulfilledResult<{ taskid: string; socketaccesstoken: string }>).value);
  assert.equal(new Set(ran.map((r) => r.taskid)).size, ran.length, 'each answered call is its own task');
  assert.ok(ran.length >= 1);
  // Polling with colliding nonces is fine: reads accept a reused nonce.
  const ended = await Promise.all(ran.map((r) => mcp.waitForTask(r.socketaccesstoken)));
  for (const t of ended) assert.equal(t.status, 'task_postprocess_end');
});

test('10 parallel identical runs whose nonces collide are one task per nonce, each call answered with it', async () => {
  const nonce = Date.now().toString();
  const headers = { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': (await import('node:crypto')).createHmac('sha256', s.apiKey).update(s.apiSecret + nonce).digest('hex'), 'Content-Type': 'application/json' };
  const body = JSON.stringify({ inputImageUrl: FACE, prompt: 'same', steps: 2 });
  const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`${s.url}/v1/Run/${MODEL}`, { method: 'POST', headers, body }).then((r) => r.json() as Promise<{ taskid: string }>)));
  assert.equal(new Set(answers.map((a) => a.taskid)).size, 1);
});

test('cancel_task and kill_task by tasktoken end in task_cancel', async () => {
  const running = await mcp.runModel(MODEL, { inputImageUrl: FACE, prompt: 'hold on', steps: 1 });
  const queued = await mcp.runModel(MODEL, { inputImageUrl: FACE, prompt: 'next', steps: 1 });
  const deadline = Date.now() + 10_000;
  while (!['task_start', 'task_output'].includes(String((await mcp.getTask(running.socketaccesstoken)).tasklist[0]!.status))) {
    assert.ok(Date.now() < deadline, 'the held task starts');
    await new Promise((r) => setTimeout(r, 10));
  }
  const cancelled = await mcp.cancelTask(queued.socketaccesstoken);
  assert.equal((cancelled.tasklist as { status: string; pexit: string }[])[0]!.status, 'task_cancel');
  const killed = await mcp.killTask(running.socketaccesstoken);
  assert.equal((killed.tasklist as { status: string }[])[0]!.status, 'task_cancel');
  assert.equal((await mcp.waitForTask(queued.socketaccesstoken)).pexit, '0');
});
