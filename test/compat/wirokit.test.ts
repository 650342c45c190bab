// WiroKit (ReactNative-QuickStart's packages/wirokit) against a real server: monotonic millisecond nonces,
// bytes uploaded with File/Upload before a JSON Run, tracking over the WebSocket with its frame parsing and
// a Task/Detail snapshot after the terminal frame.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestService, type TestService, TINY_PNG } from '../helpers/service.js';
import { NO_FACE_PNG, StandInEngine, standInTool, WiroKit } from './clients.js';

const MODEL = 'wiro/instant-id-controlnet-lora';
let s: TestService;
let kit: WiroKit;
before(async () => {
  s = await startTestService({ tools: [standInTool(new StandInEngine())] });
  kit = new WiroKit(s.apiKey, s.apiSecret, `${s.url}/v1`, `${s.url.replace('http', 'ws')}/v1`); // baseUrl and socketUrl, both
});
after(async () => s.close());

test('explore(): categories with their models', async () => {
  const categories = await kit.explore();
  assert.ok(categories.length > 0);
  for (const c of categories) {
    assert.ok(c.id && c.title, JSON.stringify(c));
    assert.deepEqual(c.models.map((m) => m.slugproject), ['instant-id-controlnet-lora']);
  }
});

test('camera-roll bytes: upload, Run by URL, track over the WebSocket to the outputs', async () => {
  const up = await kit.upload(TINY_PNG, 'IMG_0001.PNG');
  assert.equal(up.isSuccess, true);
  assert.equal(up.files[0]!.size, TINY_PNG.length);
  // runModel's resolveFileInputs puts the uploaded file's URL under the input's own key.
  const { token } = await kit.run(MODEL, { inputImage: up.files[0]!.url, prompt: 'a portrait', steps: 3, samples: 2 });
  const { events, task } = await kit.trackWithSocket(token);
  const last = events.at(-1)!;
  assert.equal(last.status, 'task_postprocess_end');
  assert.equal(last.outputs!.length, 2, 'the completed frame\'s message is the output list');
  assert.ok(events.some((e) => e.status === 'task_output'), 'progress frames on the way');
  assert.equal(events.filter((e) => e.terminal).length, 1);
  assert.equal(task.pexit, '0');
  assert.equal((task.outputs as unknown[]).length, 2);
});

test('a no-face photo: the socket ends with task_postprocess_end (no hang) and the snapshot says why', async () => {
  const started = Date.now();
  const up = await kit.upload(NO_FACE_PNG, 'rocket.png');
  const { token } = await kit.run(MODEL, { inputImageUrl: up.files[0]!.url, prompt: 'x' });
  const { events, task } = await kit.trackWithSocket(token);
  assert.ok(Date.now() - started < 60_000);
  assert.equal(events.at(-1)!.status, 'task_postprocess_end');
  assert.deepEqual(events.at(-1)!.outputs, []);
  for (const e of events.filter((x) => x.status === 'task_error')) assert.equal(e.terminal, false, 'task_error is only a log line to WiroKit');
  assert.equal(task.pexit, '1');
  assert.match(String(task.debugerror), /no face detected/);
});

test('an upload that is not an image is refused with Wiro\'s envelope, and nothing is stored', async () => {
  const stored = () => (existsSync(join(s.home, 'files/uploads/files')) ? readdirSync(join(s.home, 'files/uploads/files')).length : 0);
  const before = stored();
  const up = await kit.upload(Buffer.from('<html>not an image</html>'), 'page.png');
  assert.equal(up.isSuccess, false);
  assert.deepEqual(up.files, []);
  assert.equal(stored(), before);
});

test('10 parallel runs: ten tasks, all complete', async () => {
  const up = await kit.upload(TINY_PNG, 'me.png');
  const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => kit.run(MODEL, { inputImageUrl: up.files[0]!.url, prompt: `portrait ${i}`, steps: 2 })));
  assert.equal(new Set(runs.map((r) => r.taskid)).size, 10);
  const tracked = await Promise.all(runs.map((r) => kit.trackWithSocket(r.token)));
  for (const t of tracked) assert.equal(t.task.pexit, '0');
});
