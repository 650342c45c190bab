// The service end to end on the InstantID smoke set: the real tool definition, the real guarded network
// (a loopback server allowlisted), the real runner in its worker thread as `likeness serve` runs it
// (ThreadedRunner; the runner on its own is test/tools/instantid-runner.test.ts) (face analysis with the shared det_500m detector
// and the smoke set's RANDOM recognizer, the InstantID pipeline on the smoke SDXL model), at 64×64 and
// two steps. The images are noise; what is checked is the path: statuses, outputs, errors, Kill, LoRAs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import { encodeSafetensors } from '../../src/engine/formats/safetensors-write.js';
import { writeSmokeLora } from '../../src/engine/lora/smoke.js';
import { SMOKE_CONFIG } from '../../src/engine/smoke.js';
import { writeSmokeInstantIdSet } from '../../src/engine/smoke-instantid.js';
import { createAvailability } from '../../src/tools/catalog.js';
import { defaultTools } from '../../src/tools/index.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import type { ThreadedRunner } from '../../src/service/threaded-runner.js';
import { instantIdThreadedRunner } from '../../src/tools/instantid-runner-thread.js';
import { asset } from '../helpers/paths.js';
import { startTestService, waitForTerminal, type TestService } from '../helpers/service.js';
import { startServer, type TestServer } from '../net/helpers.js';

const RUN = '/v1/Run/wiro/instant-id-controlnet-lora';
const face = readFileSync(asset('faces/astronaut.png'));
const noFace = readFileSync(asset('faces/rocket_noface.jpg'));
const home = mkdtempSync(join(tmpdir(), 'likeness-instantid-e2e-'));
const MAX_LORA = 750_000;
const tiny = { prompt: 'a watercolor portrait', width: 64, height: 64, steps: 2 };

let s: TestService;
let web: TestServer;
let runner: ThreadedRunner;

before(async () => {
  await writeSmokeInstantIdSet(home, { detector: asset('models/det_500m.onnx') });
  // A second, smaller kohya LoRA (no LoCon convs) served by URL; the catalog one is larger than MAX_LORA.
  const urlLora = join(home, 'url-lora.safetensors');
  await writeSmokeLora(urlLora, { unet: SMOKE_CONFIG.unet }, { seed: 7, convs: false, textEncoders: false });
  const style = readFileSync(urlLora);
  const big = readFileSync(join(home, 'models', 'loras', 'Vintage-Creepy-Creatures.safetensors'));
  assert.ok(style.length < MAX_LORA && big.length > MAX_LORA, `${style.length} / ${big.length}`);
  const sd15 = Buffer.from(encodeSafetensors([
    ['lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight', { dtype: 'F32', shape: [2, 320], data: new Float32Array(640) }],
    ['lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight', { dtype: 'F32', shape: [320, 2], data: new Float32Array(640) }],
    ['lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight', { dtype: 'F32', shape: [2, 768], data: new Float32Array(1536) }],
    ['lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight', { dtype: 'F32', shape: [768, 2], data: new Float32Array(1536) }],
  ]));
  const send = (body: Buffer, type: string) => (_q: unknown, res: import('node:http').ServerResponse) => res.writeHead(200, { 'content-type': type }).end(body);
  web = await startServer({
    '/face.png': send(face, 'image/png'),
    '/rocket.jpg': send(noFace, 'image/jpeg'),
    '/style.safetensors': (req, res) => {
      if (req.headers['if-none-match'] === '"style-1"') res.writeHead(304).end();
      else res.writeHead(200, { 'content-type': 'application/octet-stream', etag: '"style-1"' }).end(style);
    },
    '/big.safetensors': send(big, 'application/octet-stream'),
    '/sd15.safetensors': send(sd15, 'application/octet-stream'),
    '/page.safetensors': send(Buffer.from('<html>sign in to download</html>'), 'text/html'),
  });
  runner = instantIdThreadedRunner({ home, threads: 1, fetchAllow: ['127.0.0.1'], maxLoraBytes: MAX_LORA });
  s = await startTestService({
    home, realNetwork: true, config: { fetchAllow: ['127.0.0.1'] },
    tools: defaultTools({ runner, availability: createAvailability(home, instantIdControlnetLora) }),
  });
});

after(async () => {
  await s?.close();
  await web?.close();
  await runner?.dispose();
  rmSync(home, { recursive: true, force: true });
});

async function run(body: Record<string, unknown>): Promise<string> {
  const { json } = await s.post(RUN, body);
  assert.equal(json.result, true, JSON.stringify(json));
  return json.taskid as string;
}

async function pngSizes(task: Record<string, unknown>): Promise<string[]> {
  const outputs = task.outputs as { name: string; url: string }[];
  return Promise.all(outputs.map(async (o) => {
    const meta = await sharp(Buffer.from(await (await fetch(o.url)).arrayBuffer())).metadata();
    return `${o.name} ${meta.format} ${meta.width}x${meta.height}`;
  }));
}

test('an uploaded face photo → task_postprocess_end with `samples` PNGs of the requested size', async () => {
  const form = new FormData();
  for (const [k, v] of Object.entries({ ...tiny, samples: 2 })) form.set(k, String(v));
  form.set('inputImage', new Blob([face]), 'astronaut.png');
  const res = await fetch(s.url + RUN, { method: 'POST', headers: s.signedHeaders(), body: form });
  const json = (await res.json()) as Record<string, unknown>;
  assert.equal(json.result, true, JSON.stringify(json));
  const task = await waitForTerminal(s, json.taskid as string, 60_000);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.equal(task.pexit, '0');
  assert.deepEqual(await pngSizes(task), ['0.png png 64x64', '1.png png 64x64']);
  assert.match(String(task.debugoutput), /smoke model set/);
  assert.match(String(task.debugoutput), /RANDOM recognizer/);
  assert.match(String(task.debugoutput), /ControlNets: 454 \S*canny\S* \(scale [\d.]+\)/, 'the default canny is named');
});

/** Frames of the task's WebSocket until a terminal one. */
function frames(token: string): Promise<Record<string, unknown>[]> {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v1`);
  const got: Record<string, unknown>[] = [];
  return new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'task_info', tasktoken: token })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Record<string, unknown>;
      got.push(f);
      if (['task_postprocess_end', 'task_cancel'].includes(f.type as string)) {
        ws.close();
        resolve(got);
      }
    });
    ws.on('error', reject);
  });
}

test('a face photo by URL, no extra ControlNet, a non-square size → one PNG of that size, progress on the WebSocket', async () => {
  const { json } = await s.post(RUN, { ...tiny, width: 128, inputImageUrl: web.url('/face.png'), selectedControlnetModel: [] });
  assert.equal(json.result, true, JSON.stringify(json));
  const seen = await frames(json.socketaccesstoken as string);
  const progress = seen.filter((f) => f.type === 'task_output' && (f.message as { type?: string }).type === 'progressGenerate');
  assert.deepEqual(progress.map((f) => (f.message as { stepCurrent: string }).stepCurrent), ['1', '2']);
  const last = seen.at(-1)!;
  assert.equal(last.type, 'task_postprocess_end');
  assert.deepEqual((last.message as { name: string }[]).map((o) => o.name), ['0.png']);
  const task = await waitForTerminal(s, json.taskid as string, 60_000);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.deepEqual(await pngSizes(task), ['0.png png 128x64']);
});

test('openpose + depth + canny (458 + 455 + 454) with IdentityNet, each with its own scale → a PNG; debugoutput names the maps and their image', async () => {
  const id = await run({
    ...tiny, inputImageUrl: web.url('/face.png'), selectedControlnetModel: ['458', '455', '454'],
    'controlnet-openpose-sdxl-1.0': 0.8, 'controlnet-depth-sdxl-1.0': 0.6, 'controlnet-canny-sdxl-1.0': 0.3,
  });
  const task = await waitForTerminal(s, id, 120_000);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.deepEqual(await pngSizes(task), ['0.png png 64x64']);
  for (const [kind, cn] of [['openpose', '458'], ['depth', '455'], ['canny', '454']]) {
    assert.match(String(task.debugoutput), new RegExp(`control map ${kind} \\(ControlNet ${cn}\\) computed from inputImageUrl`));
  }
});

test('a photo without a face fails (pexit "1") with the no-face message, before the model runs', async () => {
  const id = await run({ ...tiny, inputImageUrl: web.url('/rocket.jpg') });
  const task = await waitForTerminal(s, id, 30_000);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(String(task.debugerror), /^no face detected in inputImageUrl: use a photo with one clearly visible face, at least \d+ px/);
  assert.deepEqual(task.outputs, []);
});

test('Kill mid-run → task_cancel within about one step, no outputs', async () => {
  const id = await run({ ...tiny, width: 256, height: 256, steps: 100, inputImageUrl: web.url('/face.png') });
  const seen: number[] = [];
  for (const end = Date.now() + 60_000; Date.now() < end && seen.length < 2;) {
    const task = ((await s.post('/v1/Task/Detail', { taskid: id })).json.tasklist as Record<string, unknown>[])[0]!;
    const step = Number((task.progress as { stepCurrent?: string } | null)?.stepCurrent ?? 0);
    if (task.status === 'task_output' && step > 0 && !seen.includes(step)) seen.push(step);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(seen.length, 2, 'the task is running');
  const started = Date.now();
  const { json } = await s.post('/v1/Task/Kill', { taskid: id });
  const task = (json.tasklist as Record<string, unknown>[])[0]!;
  assert.equal(task.status, 'task_cancel');
  assert.deepEqual(task.outputs, []);
  const took = Date.now() - started;
  assert.ok(took < 1500, `Kill took ${took} ms`);
});

test('two LoRAs (catalog 622 and a URL) produce images; the URL LoRA is cached for the next task', async () => {
  const body = { ...tiny, inputImageUrl: web.url('/face.png'), selectedLoraModel: '622', selectedLoraModelPrivateUrl: web.url('/style.safetensors'), 'Vintage-Creepy-Creatures': 0.7 };
  const task = await waitForTerminal(s, await run(body), 60_000);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.deepEqual(await pngSizes(task), ['0.png png 64x64']);
  const out = String(task.debugoutput);
  assert.match(out, /selectedLoraModel 622 \(WizardWhitebeard\/Vintage-Creepy-Creatures\): \d+ layers patched at scale 0\.7/);
  assert.match(out, /selectedLoraModelPrivateUrl: \d+ layers patched at scale 1/);
  assert.match(out, /trigger words added to the prompt: creepy creature/);
  const again = await waitForTerminal(s, await run(body), 60_000);
  assert.equal(again.status, 'task_postprocess_end', String(again.debugerror));
  assert.doesNotMatch(String(again.debugoutput), /loaded the pipeline/, 'the warm pipeline is reused');
  assert.match(String(again.debugoutput), /selectedLoraModelPrivateUrl: unchanged on the server, used the cached copy/);
});

test('the project\'s private LoRA is found by the engine thread in the project\'s own folder → images', async () => {
  const project = (await s.service.ctx.store.findProject('default'))!;
  const dir = join(home, 'models', 'loras', 'private', String(project.id));
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(home, 'url-lora.safetensors'), join(dir, 'house-style.safetensors'));
  const task = await waitForTerminal(s, await run({ ...tiny, inputImageUrl: web.url('/face.png'), selectedLoraModelPrivate: 'house-style' }), 60_000);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.deepEqual(await pngSizes(task), ['0.png png 64x64']);
  assert.match(String(task.debugoutput), /selectedLoraModelPrivate house-style: \d+ layers patched at scale 1/);
});

const badLoras: [string, () => string, RegExp][] = [
  ['not a safetensors file', () => web.url('/page.safetensors'), /is a web page, not the LoRA file/],
  ['larger than the configured limit', () => web.url('/big.safetensors'), /larger than|too large|limit/i],
  ['at a private address', () => 'http://10.11.12.13/lora.safetensors', /private|not allowed|refused/i],
  ['missing (404)', () => web.url('/nothing.safetensors'), /404/],
  ['made for SD 1.5', () => web.url('/sd15.safetensors'), /SD 1\.x\/2\.x|lora_te_/],
];

for (const [what, url, message] of badLoras) {
  test(`a LoRA URL ${what} fails the task (pexit "1") before the model runs`, async () => {
    const task = await waitForTerminal(s, await run({ ...tiny, inputImageUrl: web.url('/face.png'), selectedLoraModelPrivateUrl: url() }), 30_000);
    assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
    assert.equal(task.pexit, '1');
    assert.match(String(task.debugerror), /selectedLoraModelPrivateUrl/);
    assert.match(String(task.debugerror), message);
  });
}
