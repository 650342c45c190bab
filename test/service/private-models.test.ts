// F11: private models belong to one project. Through the real HTTP service, two projects A and B:
// A's private LoRA and checkpoint (models/<loras|checkpoints>/private/<A's id>/) pass A's Run
// validation; for B they are "not a private … of this project", with exactly the message of an id
// nobody ever added, or of one that is no id at all (`../x`). The message names no server path and
// tells nothing of other projects. Files in the old shared folder (private/<id>.safetensors) count for
// nobody.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '../../src/service/auth.js';
import { createAvailability } from '../../src/tools/catalog.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import { defaultTools } from '../../src/tools/index.js';
import { nextNonce, startTestService, type TestService } from '../helpers/service.js';

const RUN = '/v1/Run/wiro/instant-id-controlnet-lora';
const home = mkdtempSync(join(tmpdir(), 'likeness-private-models-'));
let s: TestService;
let a: number;
let b: { id: number; headers: () => Record<string, string> };

before(async () => {
  s = await startTestService({
    home,
    worker: false, // validation is the subject: queued tasks stay queued
    tools: defaultTools({ runner: { async run() {} }, availability: createAvailability(home, instantIdControlnetLora) }),
  });
  a = (await s.service.ctx.store.findProject('default'))!.id;
  const project = await s.service.ctx.store.createProject('b', 'signature');
  const key = await s.service.ctx.store.createKey(project.id);
  b = {
    id: project.id,
    headers: () => {
      const nonce = nextNonce();
      return { 'x-api-key': key.apiKey, 'x-nonce': nonce, 'x-signature': sign(key.apiKey, key.apiSecret!, nonce) };
    },
  };
  assert.notEqual(a, b.id);
  const loras = join(home, 'models', 'loras', 'private', String(a));
  mkdirSync(loras, { recursive: true });
  writeFileSync(join(loras, 'style.safetensors'), 'weights');
  const checkpoint = join(home, 'models', 'checkpoints', 'private', String(a), 'mine');
  mkdirSync(checkpoint, { recursive: true });
  writeFileSync(join(checkpoint, 'model_index.json'), '{}');
  writeFileSync(join(home, 'models', 'loras', 'private', 'legacy.safetensors'), 'weights'); // the old shared layout
});

after(async () => {
  await s.close();
  rmSync(home, { recursive: true, force: true });
});

/** A Run that is valid but for the private model; no ControlNet, so no catalog file is needed. */
function body(extra: Record<string, unknown>): Record<string, unknown> {
  return { prompt: 'a portrait', inputImageUrl: 'https://images.example/face.png', selectedControlnetModel: [], ...extra };
}

async function runAs(project: 'a' | 'b', extra: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { json } = await s.post(RUN, body(extra), project === 'a' ? s.signedHeaders() : b.headers());
  return json;
}

/** The one error of a refused Run. */
async function refusal(project: 'a' | 'b', extra: Record<string, unknown>): Promise<string> {
  const json = await runAs(project, extra);
  assert.equal(json.result, false, JSON.stringify(json));
  const errors = json.errors as { code: number; message: string }[];
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0]!.code, 0);
  return errors[0]!.message;
}

const notMine = (input: string, kind: string, id: string): string =>
  `Request parameter [${input}] ${id} is not a private ${kind} of this project: ` +
  "the server's operator adds it with `likeness models private add --project <your project> FILE`";

test("A's private LoRA and checkpoint pass A's Run validation", async () => {
  for (const extra of [{ selectedLoraModelPrivate: 'style' }, { selectedModelPrivate: 'mine' }, { selectedModelPrivate: 'mine', selectedLoraModelPrivate: 'style' }]) {
    const json = await runAs('a', extra);
    assert.equal(json.result, true, JSON.stringify(json));
  }
});

test("for B, A's private LoRA is not a private LoRA of this project: the very message of an id nobody added", async () => {
  assert.equal(await refusal('b', { selectedLoraModelPrivate: 'style' }), notMine('selectedLoraModelPrivate', 'LoRA', 'style'));
  assert.equal(await refusal('b', { selectedLoraModelPrivate: 'never-added' }), notMine('selectedLoraModelPrivate', 'LoRA', 'never-added'));
  assert.equal(await refusal('a', { selectedLoraModelPrivate: 'never-added' }), notMine('selectedLoraModelPrivate', 'LoRA', 'never-added'));
});

test("for B, A's private checkpoint is not a private checkpoint of this project, as a never-added one", async () => {
  assert.equal(await refusal('b', { selectedModelPrivate: 'mine' }), notMine('selectedModelPrivate', 'checkpoint', 'mine'));
  assert.equal(await refusal('b', { selectedModelPrivate: 'nothing' }), notMine('selectedModelPrivate', 'checkpoint', 'nothing'));
});

test('a path-like or malformed id gets the same message, for either project', async () => {
  for (const id of ['../x', '..', `../${a}/style`, `${a}/style`, '.style', 'etc/passwd']) {
    for (const project of ['a', 'b'] as const) {
      assert.equal(await refusal(project, { selectedLoraModelPrivate: id }), notMine('selectedLoraModelPrivate', 'LoRA', id), `${project}: ${id}`);
    }
  }
});

test('the message names no server path, no folder and no other project', async () => {
  const messages = [
    await refusal('b', { selectedLoraModelPrivate: 'style' }),
    await refusal('b', { selectedModelPrivate: 'mine' }),
    await refusal('b', { selectedLoraModelPrivate: '../x' }),
  ];
  for (const m of messages) {
    assert.ok(!m.includes(home), m);
    assert.doesNotMatch(m, /LIKENESS_HOME|models\/|private\/|safetensors|default|\bb\b project/, m);
  }
});

test('a file in the old shared folder (loras/private/<id>.safetensors) is no private LoRA of any project', async () => {
  assert.equal(await refusal('a', { selectedLoraModelPrivate: 'legacy' }), notMine('selectedLoraModelPrivate', 'LoRA', 'legacy'));
  assert.equal(await refusal('b', { selectedLoraModelPrivate: 'legacy' }), notMine('selectedLoraModelPrivate', 'LoRA', 'legacy'));
});
