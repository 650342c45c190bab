// The attacks replay protection stops, against a real server: a captured signed Run replayed (also after a
// restart, also at a second process on the same store), a stale nonce, a reused nonce with another body, a
// second tenant flooding nonces; and Run's Idempotency-Key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nextNonce, startTestService, type TestService, TINY_PNG } from '../helpers/service.js';
import { SqliteTaskStore } from '../../src/service/store/sqlite.js';
import { StandInEngine, standInTool } from './clients.js';

const RUN = '/v1/Run/wiro/instant-id-controlnet-lora';
const FACE = 'https://images.example/face.png';
const home = mkdtempSync(join(tmpdir(), 'likeness-replay-'));
let s: TestService;

async function start(): Promise<TestService> {
  const t = await startTestService({ home, tools: [standInTool(new StandInEngine())] });
  t.net.images.set(FACE, TINY_PNG);
  return t;
}

before(async () => {
  s = await start();
});
after(async () => {
  await s.close();
  rmSync(home, { recursive: true, force: true });
});

const signed = (key: string, secret: string, nonce = nextNonce()) => ({
  'x-api-key': key, 'x-nonce': nonce, 'x-signature': createHmac('sha256', key).update(secret + nonce).digest('hex'),
});

/** A request as it went over the wire, to be sent again verbatim. */
interface Captured {
  path: string;
  headers: Record<string, string>;
  body: string;
}

const send = async (t: TestService, c: Captured) => {
  const res = await fetch(t.url + c.path, { method: 'POST', headers: { 'content-type': 'application/json', ...c.headers }, body: c.body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, replayed: res.headers.get('x-likeness-replayed') };
};

const total = async (t: TestService) => Number((await t.post('/v1/Task/List', {})).json.total);

test('a captured signed Run sent again gets the first answer and creates no second task', async () => {
  const run: Captured = { path: RUN, headers: signed(s.apiKey, s.apiSecret), body: JSON.stringify({ inputImageUrl: FACE, prompt: 'mine' }) };
  const first = await send(s, run);
  assert.equal(first.json.result, true);
  const count = await total(s);
  const again = await send(s, run);
  assert.deepEqual(again.json, first.json);
  assert.equal(again.replayed, 'true');
  assert.equal(await total(s), count);
});

test('a reused nonce with another body is refused and acts not at all', async () => {
  const headers = signed(s.apiKey, s.apiSecret);
  const first = await send(s, { path: RUN, headers, body: JSON.stringify({ inputImageUrl: FACE, prompt: 'mine' }) });
  assert.equal(first.json.result, true);
  const count = await total(s);
  const forged = await send(s, { path: RUN, headers, body: JSON.stringify({ inputImageUrl: FACE, prompt: 'the attacker\'s', samples: 8 }) });
  assert.equal(forged.status, 401);
  assert.match(JSON.stringify(forged.json.errors), /already used with this API key for a different request/);
  const kill = await send(s, { path: '/v1/Task/Kill', headers, body: JSON.stringify({ taskid: first.json.taskid }) });
  assert.equal(kill.status, 401, 'nor for another acting call');
  assert.equal(await total(s), count);
});

test('a stale nonce is refused, and so is one from the future', async () => {
  for (const nonce of [String(Math.floor(Date.now() / 1000) - 301), String(Date.now() + 301_000)]) {
    const r = await send(s, { path: RUN, headers: signed(s.apiKey, s.apiSecret, nonce), body: JSON.stringify({ inputImageUrl: FACE, prompt: 'x' }) });
    assert.equal(r.status, 401, nonce);
    assert.match(JSON.stringify(r.json.errors), /s old|in the future/);
  }
});

test('a second tenant flooding nonces does not make the first tenant\'s capture replayable', async () => {
  const victim: Captured = { path: RUN, headers: signed(s.apiKey, s.apiSecret), body: JSON.stringify({ inputImageUrl: FACE, prompt: 'victim' }) };
  const first = await send(s, victim);
  const p = await s.service.ctx.store.createProject('flooder', 'signature');
  const k = await s.service.ctx.store.createKey(p.id);
  // 500 nonces, 20 at a time (the per-address connection cap is 64).
  for (let batch = 0; batch < 25; batch++) {
    await Promise.all(Array.from({ length: 20 }, () => send(s, { path: '/v1/Task/Cancel', headers: signed(k.apiKey, k.apiSecret!), body: '{"taskid":"1"}' })));
  }
  const count = await total(s);
  const again = await send(s, victim);
  assert.deepEqual(again.json, first.json);
  assert.equal(await total(s), count);
});

test('a capture replayed after a restart (a new process on the same store) still acts once', async () => {
  const run: Captured = { path: RUN, headers: signed(s.apiKey, s.apiSecret), body: JSON.stringify({ inputImageUrl: FACE, prompt: 'before restart' }) };
  const first = await send(s, run);
  await s.close();
  s = await start();
  const count = await total(s);
  const afterRestart = await send(s, run);
  assert.deepEqual(afterRestart.json, first.json);
  assert.equal(await total(s), count);
});

test('Run honours Idempotency-Key: same key and body is the same task under any nonce; another body is refused', async () => {
  const body = JSON.stringify({ inputImageUrl: FACE, prompt: 'once' });
  const key = `order-${Date.now()}`;
  const a = await send(s, { path: RUN, headers: { ...signed(s.apiKey, s.apiSecret), 'idempotency-key': key }, body });
  const b = await send(s, { path: RUN, headers: { ...signed(s.apiKey, s.apiSecret), 'idempotency-key': key }, body });
  assert.equal(a.json.result, true);
  assert.equal(b.json.taskid, a.json.taskid);
  const c = await send(s, { path: RUN, headers: { ...signed(s.apiKey, s.apiSecret), 'idempotency-key': key }, body: JSON.stringify({ inputImageUrl: FACE, prompt: 'twice' }) });
  assert.equal(c.status, 422);
  assert.match(JSON.stringify(c.json.errors), /Idempotency-Key .* different request/);
});

test('records are kept per key and pruned once their nonce has left the window', async () => {
  const store = new SqliteTaskStore(join(home, 'likeness.db'));
  try {
    const now = Date.now();
    assert.deepEqual(await store.claimReplay('key:a', '1', 'f', now - 1), { claimed: true });
    assert.deepEqual(await store.claimReplay('key:b', '1', 'g', now + 60_000), { claimed: true }, 'another key, the same nonce: its own record');
    assert.ok((await store.pruneReplay(now)) >= 1);
    assert.deepEqual(await store.claimReplay('key:a', '1', 'h', now + 60_000), { claimed: true }, 'the expired record is gone');
    const kept = await store.claimReplay('key:b', '1', 'g', now + 60_000);
    assert.equal(kept.claimed, false);
  } finally {
    await store.close();
  }
});
