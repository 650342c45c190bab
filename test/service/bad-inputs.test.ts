// Bad input from strangers: each case is a clear error, nothing is queued for a rejected request, and
// the store stays consistent. Runs the real tool definition and the real guarded network (loopback
// test servers are reachable only through the allowlist).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultTools } from '../../src/tools/index.js';
import { createAvailability } from '../../src/tools/catalog.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import type { ToolRunner } from '../../src/service/runner.js';
import { startTestService, waitForTerminal, type TestService } from '../helpers/service.js';
import { asset } from '../helpers/paths.js';
import { bombPng, startServer, type TestServer } from '../net/helpers.js';

const face = readFileSync(asset('faces/astronaut.png'));
const succeed: ToolRunner = { async run(ctx) { await ctx.writeOutput('0.png', ctx.inputs.inputImage!.bytes, 'image/png'); } };

let s: TestService;
let web: TestServer;
before(async () => {
  web = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(face),
    '/page.html': (_q, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not an image</html>'),
    '/to-loopback': (_q, res) => res.writeHead(302, { location: 'http://127.0.0.2/secret.png' }).end(),
    '/bomb.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(bombPng()),
  });
  s = await startTestService({ tools: defaultTools({ runner: succeed }), realNetwork: true, config: { fetchAllow: ['127.0.0.1'], bodyLimit: 256 * 1024 } });
});
after(async () => {
  await s.close();
  await web.close();
});

async function taskCount(): Promise<number> {
  return (await s.service.ctx.store.listTasks(1, 0, 1)).total;
}

const RUN = '/v1/Run/wiro/instant-id-controlnet-lora';
const valid = () => ({ prompt: 'a portrait', inputImageUrl: web ? web.url('/face.png') : 'https://images.example/face.png' });

test('a valid Run with a real photo URL produces an output through the guarded fetcher', async () => {
  const { json } = await s.post(RUN, valid());
  assert.equal(json.result, true, JSON.stringify(json));
  const task = await waitForTerminal(s, json.taskid as string);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.equal((task.outputs as unknown[]).length, 1);
});

const rejected: [string, Record<string, unknown>, RegExp][] = [
  ['a prompt that is an object', { ...valid(), prompt: { text: 'x' } }, /\[prompt\]/],
  ['steps as text', { ...valid(), steps: 'many' }, /Request parameter \[steps\] must be integer or float/],
  ['steps above the range', { ...valid(), steps: 101 }, /^Request parameter \[steps\] must be between 1 and 100$/],
  ['a negative guidance scale', { ...valid(), scale: '-1' }, /\[scale\] must be between 0 and 30/],
  ['ip_adapter_scale above 1.5', { ...valid(), ip_adapter_scale: 2 }, /\[ip_adapter_scale\] must be between 0 and 1.5/],
  ['nine samples', { ...valid(), samples: 9 }, /\[samples\] must be between 1 and 8/],
  ['a negative seed', { ...valid(), seed: '-1' }, /\[seed\]/],
  ['a seed above 2^64-1', { ...valid(), seed: '18446744073709551616' }, /\[seed\]/],
  ['an unknown scheduler', { ...valid(), scheduler: 'MagicScheduler' }, /\[scheduler\]/],
  ['an unknown ControlNet id', { ...valid(), selectedControlnetModel: ['999'] }, /\[selectedControlnetModel\] has unknown option \[999\]/],
  ['an unknown LoRA id', { ...valid(), selectedLoraModel: '12345' }, /\[selectedLoraModel\]/],
  ['a ControlNet scale out of its range', { ...valid(), selectedControlnetModel: '454', 'controlnet-canny-sdxl-1.0': 1.5 }, /controlnet-canny-sdxl-1.0/],
  ['no face image at all', { prompt: 'x' }, /\[inputImage\] required/],
  ['a prompt over 2000 characters', { ...valid(), prompt: 'x'.repeat(2001) }, /\[prompt\] must be at most 2000 characters/],
  ['a negative prompt over 2000 characters', { ...valid(), negativePrompt: 'y '.repeat(1001) }, /\[negativePrompt\] must be at most 2000 characters/],
];

for (const [what, body, message] of rejected) {
  test(`Run refuses ${what} with a clear error and queues nothing`, async () => {
    const before = await taskCount();
    const { status, json } = await s.post(RUN, body);
    assert.equal(status, 200);
    assert.equal(json.result, false);
    const messages = (json.errors as { message: string }[]).map((e) => e.message).join(' | ');
    assert.match(messages, message);
    assert.equal(await taskCount(), before);
  });
}

test('an oversize body is refused with 413 and queues nothing', async () => {
  const before = await taskCount();
  const { status, json } = await s.post(RUN, { ...valid(), prompt: 'x'.repeat(300 * 1024) });
  assert.equal(status, 413);
  assert.equal(json.result, false);
  assert.equal(await taskCount(), before);
});

test('a body that is not JSON is refused with 400', async () => {
  const res = await fetch(s.url + RUN, { method: 'POST', headers: { 'content-type': 'application/json', ...s.signedHeaders() }, body: '{"prompt":' });
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { result: boolean }).result, false);
});

async function upload(bytes: Uint8Array, name: string) {
  const form = new FormData();
  form.set('prompt', 'a portrait');
  form.set('inputImage', new Blob([bytes]), name);
  const res = await fetch(s.url + RUN, { method: 'POST', headers: s.signedHeaders(), body: form });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('a multipart upload of a real photo is stored, linked in parameters, and served back', async () => {
  const { json } = await upload(face, 'me.png');
  assert.equal(json.result, true, JSON.stringify(json));
  const task = await waitForTerminal(s, json.taskid as string);
  const url = (task.parameters as { inputImage: string }).inputImage;
  assert.match(url, /\/v1\/File\/[A-Za-z0-9]{30}\/inputImage-/);
  const res = await fetch(url);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), face);
});

test('an uploaded file that is not an image is refused and leaves no file behind', async () => {
  const before = await taskCount();
  const uploads = join(s.home, 'files', 'uploads');
  const filesBefore = existsSync(uploads) ? readdirSync(uploads).length : 0;
  const { json } = await upload(new TextEncoder().encode('#!/bin/sh\necho hi\n'), 'face.png');
  assert.equal(json.result, false);
  assert.match((json.errors as { message: string }[])[0]!.message, /\[inputImage\].*not an image/i);
  assert.equal(await taskCount(), before);
  assert.equal(existsSync(uploads) ? readdirSync(uploads).length : 0, filesBefore);
});

test('an uploaded decompression bomb is refused before decoding', async () => {
  const { json } = await upload(bombPng(), 'bomb.png');
  assert.equal(json.result, false);
  assert.match((json.errors as { message: string }[])[0]!.message, /pixel|too large/i);
});

const failedInPreprocess: [string, () => string, RegExp][] = [
  ['a URL to a private address', () => 'http://10.0.0.5/face.png', /private/i],
  ['a URL to the cloud metadata address', () => 'http://169.254.169.254/latest/meta-data', /metadata|link-local/i],
  ['a URL that answers 404', () => web.url('/missing.png'), /404/],
  ['a URL that redirects to loopback', () => web.url('/to-loopback'), /loopback|127\.0\.0\.2/i],
  ['a URL to a web page', () => web.url('/page.html'), /web page|html|not an image|content type/i],
  ['a URL to a decompression bomb', () => web.url('/bomb.png'), /pixel|too large/i],
  ['a URL with another scheme', () => 'file:///etc/passwd', /not an http\(s\) URL/],
];

for (const [what, url, message] of failedInPreprocess) {
  test(`${what} fails the task in preprocess (pexit "1") with a clear reason`, async () => {
    const { json } = await s.post(RUN, { ...valid(), inputImageUrl: url() });
    assert.equal(json.result, true);
    const task = await waitForTerminal(s, json.taskid as string);
    assert.equal(task.status, 'task_postprocess_end');
    assert.equal(task.pexit, '1');
    assert.match(task.debugerror as string, /inputImageUrl/);
    assert.match(task.debugerror as string, message);
    assert.deepEqual(task.outputs, []);
  });
}

test('a catalog model that is not installed is refused at Run, saying where to put it', () => {
  const [tool] = defaultTools({ runner: succeed, availability: createAvailability(s.home, instantIdControlnetLora) });
  const result = tool!.validate({ ...valid(), selectedLoraModel: '622', selectedControlnetModel: '458' }, {});
  assert.equal(result.ok, false);
  const messages = (result as { errors: { message: string }[] }).errors.map((e) => e.message).join(' | ');
  assert.match(messages, /Vintage-Creepy-Creatures/);
  assert.match(messages, /openpose/);
  assert.match(messages, /models\/loras/);
});
