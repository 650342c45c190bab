// Responses carry every field of the seed's examples, with the same JSON types (numbers as strings).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '../helpers/paths.js';
import { startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';

/** The seed's response examples (its Kill/Cancel examples hold an unescaped JSON string in `categories`). */
function seedExample(heading: string): Record<string, unknown> {
  const md = readFileSync(join(sharedDir, 'design', 'wiro-tool-seed.md'), 'utf8');
  const start = md.indexOf(`## ${heading}`);
  const block = md.slice(start).match(/```json\n([\s\S]*?)\n```/)![1]!;
  return JSON.parse(block.replace(/"categories": "\[(.*?)\]"/, (_m, inner: string) => `"categories": ${JSON.stringify(`[${inner}]`)}`)) as Record<string, unknown>;
}

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function assertSameShape(actual: Record<string, unknown>, expected: Record<string, unknown>, where: string) {
  for (const [key, value] of Object.entries(expected)) {
    assert.ok(key in actual, `${where}: missing field ${key}`);
    // expiretime is null in the seed and stays null; parameters is an object in both
    assert.equal(typeOf(actual[key]), typeOf(value), `${where}.${key}: ${typeOf(actual[key])} instead of ${typeOf(value)}`);
    if (typeof value === 'string' && /^\d+$/.test(value) && key !== 'socketaccesstoken' && key !== 'accesskey' && key !== 'id') {
      assert.match(actual[key] as string, /^\d+$/, `${where}.${key} should be a decimal string`);
    }
  }
}

let s: TestService;
let finished: Record<string, unknown>;
let runResponse: Record<string, unknown>;
before(async () => {
  s = await startTestService();
  s.net.images.set('https://images.example/face.png', TINY_PNG);
  runResponse = (await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' })).json;
  finished = await waitForTerminal(s, runResponse.taskid as string);
});
after(async () => s.close());

test('Run answers {errors, taskid, socketaccesstoken, result} as the seed shows', () => {
  const seed = seedExample('Run Command - Response');
  assert.deepEqual(Object.keys(runResponse).sort(), Object.keys(seed).sort());
  assertSameShape(runResponse, seed, 'Run');
  assert.match(runResponse.socketaccesstoken as string, /^[A-Za-z0-9]{30}$/);
});

test('Task/Detail answers {total, errors, tasklist, result} with every task and output field of the seed', async () => {
  const { json } = await s.post('/v1/Task/Detail', { taskid: runResponse.taskid });
  const seed = seedExample('Get Task Detail - Response');
  assertSameShape(json, seed, 'Detail');
  const task = (json.tasklist as Record<string, unknown>[])[0]!;
  assertSameShape(task, (seed.tasklist as Record<string, unknown>[])[0]!, 'Detail.tasklist[0]');
  const killSeed = (seedExample('Kill Task - Response').tasklist as Record<string, unknown>[])[0]!;
  assertSameShape(task, killSeed, 'Detail vs Kill example');
  const output = (task.outputs as Record<string, unknown>[])[0]!;
  assertSameShape(output, (killSeed.outputs as Record<string, unknown>[])[0]!, 'outputs[0]');
  assert.equal(output.uuid, task.uuid);
  assert.equal(output.contenttype, 'image/png');
});

test('Detail by tasktoken and by socketaccesstoken give the same task as by taskid', async () => {
  const token = finished.socketaccesstoken;
  const a = await s.post('/v1/Task/Detail', { taskid: runResponse.taskid });
  const b = await s.post('/v1/Task/Detail', { tasktoken: token });
  const c = await s.post('/v1/Task/Detail', { socketaccesstoken: token });
  assert.deepEqual(b.json, a.json);
  assert.deepEqual(c.json, a.json);
});

test('Detail without an identifier says what is required', async () => {
  const { json } = await s.post('/v1/Task/Detail', {});
  assert.deepEqual(json, { result: false, errors: [{ code: 0, message: 'taskid or socketaccesstoken is required' }] });
});

test('Cancel answers with the seed\'s Cancel shape', async () => {
  s.runner.stepDelayMs = 30;
  const blocker = (await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png', mode: 'gate' })).json.taskid as string;
  const queued = (await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' })).json.taskid;
  const { json } = await s.post('/v1/Task/Cancel', { taskid: queued });
  assertSameShape(json, seedExample('Cancel Task - Response'), 'Cancel');
  s.runner.release();
  await waitForTerminal(s, blocker);
});

test('Task/List returns the project\'s tasks newest first, paginated', async () => {
  const { json } = await s.post('/v1/Task/List', { start: 0, limit: 2 });
  assert.equal(json.result, true);
  assert.match(json.total as string, /^\d+$/);
  const ids = (json.tasklist as { id: string }[]).map((t) => Number(t.id));
  assert.equal(ids.length, 2);
  assert.ok(ids[0]! > ids[1]!);
  const next = await s.post('/v1/Task/List', { start: 1, limit: 1 });
  assert.equal((next.json.tasklist as { id: string }[])[0]!.id, String(ids[1]));
});

test('InputOutputDelete removes a finished task\'s files, and refuses a running one', async () => {
  const url = ((finished.outputs as { url: string }[])[0]!).url;
  const del = await s.post('/v1/Task/InputOutputDelete', { taskid: runResponse.taskid });
  assert.deepEqual(del.json, { errors: [], result: true });
  assert.equal((await fetch(url)).status, 404);
  const again = await s.post('/v1/Task/InputOutputDelete', { taskid: runResponse.taskid });
  assert.equal(again.json.result, true, 'idempotent');

  const running = (await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png', mode: 'gate' })).json.taskid as string;
  const refused = await s.post('/v1/Task/InputOutputDelete', { taskid: running });
  assert.deepEqual(refused.json.errors, [{ code: 1, message: 'Task must be completed or cancelled before deleting files' }]);
  s.runner.release();
  await waitForTerminal(s, running);
});

test('an unknown route answers 404 with the envelope', async () => {
  const res = await fetch(`${s.url}/v1/Nope`, { method: 'POST' });
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { result: false, errors: [{ code: 0, message: 'Error parsing url.' }] });
});

test('an unknown tool answers Wiro\'s code 1', async () => {
  const { json } = await s.post('/v1/Run/wiro/no-such-tool', {});
  assert.deepEqual(json, { result: false, errors: [{ code: 1, message: 'slug-owner-project-not-exist' }] });
});

test('file URLs are unguessable: a wrong access key is 404', async () => {
  const out = (finished.outputs as { url: string; accesskey: string }[])[0]!;
  assert.match(out.accesskey, /^[A-Za-z0-9]{30}$/);
  const forged = out.url.replace(out.accesskey, 'A'.repeat(30));
  assert.equal((await fetch(forged)).status, 404);
});
