// Signed requests as Wiro defines them: x-signature = hex HMAC-SHA256(key = API key, msg = secret + nonce).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startTestService, TINY_PNG, type TestService } from '../helpers/service.js';

let s: TestService;
before(async () => {
  s = await startTestService();
  s.net.images.set('https://images.example/face.png', TINY_PNG);
});
after(async () => s.close());

const opensslSignature = (key: string, secret: string, nonce: string) => createHmac('sha256', key).update(`${secret}${nonce}`).digest('hex');

test('a request signed as the seed signs it (seconds nonce) is accepted', async () => {
  const nonce = String(Math.floor(Date.now() / 1000));
  const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, nonce) });
  assert.equal(status, 200);
  assert.equal(json.result, true);
});

test('a millisecond nonce is accepted too', async () => {
  const nonce = String(Date.now() + 7);
  const { json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, nonce) });
  assert.equal(json.result, true);
});

test('a bad signature is refused with 401 and Wiro\'s envelope', async () => {
  const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': '123', 'x-signature': 'ab'.repeat(32) });
  assert.equal(status, 401);
  assert.equal(json.result, false);
  assert.equal((json.errors as { code: number }[])[0]!.code, 0);
  assert.match((json.errors as { message: string }[])[0]!.message, /x-signature does not match/);
});

test('missing signature headers on a signature project give Wiro\'s message', async () => {
  const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey });
  assert.equal(status, 401);
  assert.deepEqual(json.errors, [{ code: 0, message: 'Project requires signature authentication. x-signature and x-nonce headers are required.' }]);
});

test('a missing or unknown API key is refused', async () => {
  assert.equal((await s.post('/v1/Task/List', {}, {})).status, 401);
  assert.equal((await s.post('/v1/Task/List', {}, { 'x-api-key': 'nope', 'x-nonce': '1', 'x-signature': 'x' })).status, 401);
});

test('a replayed nonce is refused', async () => {
  const headers = s.signedHeaders();
  assert.equal((await s.post('/v1/Task/List', {}, headers)).status, 200);
  const replay = await s.post('/v1/Task/List', {}, headers);
  assert.equal(replay.status, 401);
  assert.match((replay.json.errors as { message: string }[])[0]!.message, /already used/);
});

test('a non-integer nonce is refused', async () => {
  const nonce = 'abc';
  const { status } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, nonce) });
  assert.equal(status, 401);
});

test('a revoked key is refused', async () => {
  const project = (await s.service.ctx.store.findProject('default'))!;
  const k = await s.service.ctx.store.createKey(project.id);
  await s.service.ctx.store.revokeKey(k.apiKey);
  const nonce = '99';
  const { status } = await s.post('/v1/Task/List', {}, { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(k.apiKey, k.apiSecret!, nonce) });
  assert.equal(status, 401);
});

test('an API-key-only project authenticates with x-api-key alone', async () => {
  const p = await s.service.ctx.store.createProject('keyonly', 'apikey');
  const k = await s.service.ctx.store.createKey(p.id);
  assert.equal(k.apiSecret, null);
  const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': k.apiKey });
  assert.equal(status, 200);
  assert.equal(json.result, true);
});

test('another project\'s task answers exactly as a task that does not exist', async () => {
  const { json: run } = await s.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' });
  const other = await s.service.ctx.store.createProject('other', 'signature');
  const k = await s.service.ctx.store.createKey(other.id);
  const asOther = (body: unknown) => {
    const nonce = String(Date.now() * 10 + Math.floor(Math.random() * 10));
    return s.post('/v1/Task/Detail', body, { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(k.apiKey, k.apiSecret!, nonce) });
  };
  const theirs = await asOther({ taskid: run.taskid });
  const missing = await asOther({ taskid: '999999' });
  const byToken = await asOther({ tasktoken: run.socketaccesstoken });
  assert.deepEqual(theirs.json, missing.json);
  assert.deepEqual(byToken.json, missing.json);
  assert.deepEqual(missing.json, { result: false, errors: [{ code: 1, message: 'There is no task yet.' }] });
  for (const path of ['/v1/Task/Kill', '/v1/Task/Cancel', '/v1/Task/InputOutputDelete']) {
    const nonce = String(Date.now() * 10 + 3);
    const r = await s.post(path, { taskid: run.taskid }, { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(k.apiKey, k.apiSecret!, nonce) });
    assert.deepEqual(r.json, missing.json, path);
  }
});
