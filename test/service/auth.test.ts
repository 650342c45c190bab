// Signed requests as Wiro defines them: x-signature = hex HMAC-SHA256(key = API key, msg = secret + nonce).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { nextNonce, startTestService, TINY_PNG, type TestService } from '../helpers/service.js';
import { nonceTime, signatureHex, staleness } from '../../src/service/auth.js';

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
  const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nextNonce(), 'x-signature': 'ab'.repeat(32) });
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

test('a read accepts a nonce it has seen before (n8n and the seed sign once and poll with the same headers)', async () => {
  const headers = s.signedHeaders();
  assert.equal((await s.post('/v1/Task/List', {}, headers)).status, 200);
  assert.equal((await s.post('/v1/Task/List', {}, headers)).status, 200);
});

test('a nonce that is not a timestamp in seconds or milliseconds is refused, naming what to send', async () => {
  for (const nonce of ['abc', '0', '1', '2001', '99999999', '170000000000000000']) {
    const { status, json } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, nonce) });
    assert.equal(status, 401, nonce);
    assert.match((json.errors as { message: string }[])[0]!.message, /is not a timestamp: send the current unix time in seconds/, nonce);
  }
});

test('a stale or future nonce is refused with how far off it is', async () => {
  const old = String(Math.floor(Date.now() / 1000) - 400);
  const ahead = String(Date.now() + 400_000);
  const stale = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': old, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, old) });
  assert.equal(stale.status, 401);
  assert.match((stale.json.errors as { message: string }[])[0]!.message, /x-nonce is 40\d s old; nonces are accepted for 300 s/);
  const future = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': ahead, 'x-signature': opensslSignature(s.apiKey, s.apiSecret, ahead) });
  assert.equal(future.status, 401);
  assert.match((future.json.errors as { message: string }[])[0]!.message, /x-nonce is 40\d s in the future/);
});

test('nonces are told apart by size: 10 digits are seconds, 13 are milliseconds', () => {
  assert.deepEqual(nonceTime('1700000000'), { atMs: 1_700_000_000_000 });
  assert.deepEqual(nonceTime('1700000000123'), { atMs: 1_700_000_000_123 });
  assert.ok('error' in nonceTime('1700000000123456'), 'microseconds are not a nonce');
  assert.equal(staleness(1_000_000, 1_000_000 + 300_000, 300), undefined, 'the window is inclusive');
  assert.equal(staleness(0, 10 ** 12, 0), undefined, 'window 0 turns the freshness check off');
});

test('signatures are accepted as OpenSSL prints them and in upper case; the digest is still checked', async () => {
  const nonce = nextNonce();
  const hex = opensslSignature(s.apiKey, s.apiSecret, nonce);
  assert.equal(signatureHex(`SHA2-256(stdin)= ${hex}`), hex);
  assert.equal(signatureHex(`(stdin)= ${hex}`), hex);
  assert.equal(signatureHex(`HMAC-SHA256(stdin)= ${hex}\n`), hex);
  assert.equal(signatureHex('SHA2-256(stdin)= xyz'), undefined);
  for (const form of [`SHA2-256(stdin)= ${hex}`, hex.toUpperCase()]) {
    const { status } = await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': form });
    assert.equal(status, 200, form);
  }
  const wrong = `SHA2-256(stdin)= ${hex.slice(0, 63)}${hex[63] === '0' ? '1' : '0'}`;
  assert.equal((await s.post('/v1/Task/List', {}, { 'x-api-key': s.apiKey, 'x-nonce': nonce, 'x-signature': wrong })).status, 401);
});

test('a revoked key is refused', async () => {
  const project = (await s.service.ctx.store.findProject('default'))!;
  const k = await s.service.ctx.store.createKey(project.id);
  await s.service.ctx.store.revokeKey(k.apiKey);
  const nonce = nextNonce();
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
    const nonce = nextNonce();
    return s.post('/v1/Task/Detail', body, { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(k.apiKey, k.apiSecret!, nonce) });
  };
  const theirs = await asOther({ taskid: run.taskid });
  const missing = await asOther({ taskid: '999999' });
  const byToken = await asOther({ tasktoken: run.socketaccesstoken });
  assert.deepEqual(theirs.json, missing.json);
  assert.deepEqual(byToken.json, missing.json);
  assert.deepEqual(missing.json, { result: false, errors: [{ code: 1, message: 'There is no task yet.' }] });
  for (const path of ['/v1/Task/Kill', '/v1/Task/Cancel', '/v1/Task/InputOutputDelete']) {
    const nonce = nextNonce();
    const r = await s.post(path, { taskid: run.taskid }, { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': opensslSignature(k.apiKey, k.apiSecret!, nonce) });
    assert.deepEqual(r.json, missing.json, path);
  }
});
