// ReplayGuard on its own (replay.ts): what acts, what is answered again, what is refused, and how a
// request that failed without answering is forgotten.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/service/http.js';
import { fingerprint, idempotencyKeyOf, ReplayGuard } from '../../src/service/replay.js';
import { SqliteTaskStore } from '../../src/service/store/sqlite.js';
import type { ApiKeyRecord } from '../../src/service/store/types.js';

const store = new SqliteTaskStore(':memory:');
after(() => store.close());
const guard = new ReplayGuard(store, 300);
const key = (apiKey: string): ApiKeyRecord => ({ apiKey, apiSecret: 's', projectId: 1, projectName: 'p', auth: 'signature', createdAt: 0, revokedAt: null });
const nonce = (value: string) => ({ value, atMs: Date.now() });

test('the fingerprint ignores key order and sees every value and file byte', () => {
  assert.equal(fingerprint('r', { a: 1, b: [1, { c: 2, d: 3 }] }), fingerprint('r', { b: [1, { d: 3, c: 2 }], a: 1 }));
  assert.notEqual(fingerprint('r', { a: 1 }), fingerprint('r', { a: '1' }));
  assert.notEqual(fingerprint('r', { a: 1 }), fingerprint('other', { a: 1 }));
  assert.notEqual(fingerprint('r', {}, [{ field: 'f', bytes: Buffer.from('x') }]), fingerprint('r', {}, [{ field: 'f', bytes: Buffer.from('y') }]));
});

test('parallel identical requests act once and all get the one answer', async () => {
  let acted = 0;
  const act = async () => {
    acted++;
    await new Promise((r) => setTimeout(r, 50));
    return { taskid: String(acted) };
  };
  const req = { key: key('k1'), nonce: nonce('1') };
  const answers = await Promise.all(Array.from({ length: 5 }, () => guard.once(req, 'same', act)));
  assert.equal(acted, 1);
  assert.deepEqual(new Set(answers.map((a) => JSON.stringify(a.body))), new Set(['{"taskid":"1"}']));
  assert.equal(answers.filter((a) => !a.replayed).length, 1);
});

test('an ApiError is an answer (replayed as such); any other error forgets the claim so a retry acts', async () => {
  const req = { key: key('k2'), nonce: nonce('2') };
  const refused = await guard.once(req, 'p', async () => {
    throw new ApiError(1, 'There is no task yet.');
  });
  assert.deepEqual(refused, { status: 200, body: { result: false, errors: [{ code: 1, message: 'There is no task yet.' }] }, replayed: false });
  assert.equal((await guard.once(req, 'p', async () => 'never')).replayed, true);

  const crash = { key: key('k2'), nonce: nonce('3') };
  await assert.rejects(guard.once(crash, 'p', async () => {
    throw new Error('disk full');
  }), /disk full/);
  assert.deepEqual((await guard.once(crash, 'p', async () => 'acted')).body, 'acted');
});

test('another body under the nonce is refused (401); the same nonce under another key is its own', async () => {
  await guard.once({ key: key('k3'), nonce: nonce('4') }, 'a', async () => 'first');
  await assert.rejects(guard.once({ key: key('k3'), nonce: nonce('4') }, 'b', async () => 'second'), (e: ApiError) => e.httpStatus === 401 && /different request/.test(e.message));
  assert.equal((await guard.once({ key: key('k4'), nonce: nonce('4') }, 'b', async () => 'theirs')).body, 'theirs');
});

test('without a nonce (API-key-only projects) or with window 0 every request acts', async () => {
  let acted = 0;
  for (let i = 0; i < 2; i++) await guard.once({ key: key('k5') }, 'x', async () => ++acted);
  const off = new ReplayGuard(store, 0);
  for (let i = 0; i < 2; i++) await off.once({ key: key('k5'), nonce: nonce('5') }, 'x', async () => ++acted);
  assert.equal(acted, 4);
});

test('Idempotency-Key headers must be printable tokens', () => {
  assert.equal(idempotencyKeyOf({}), undefined);
  assert.equal(idempotencyKeyOf({ 'idempotency-key': 'order-42' }), 'order-42');
  assert.throws(() => idempotencyKeyOf({ 'idempotency-key': 'has space' }), /printable ASCII/);
  assert.throws(() => idempotencyKeyOf({ 'idempotency-key': 'x'.repeat(256) }), /1 to 255/);
});

test('a claim left pending by a process that stopped mid-request is forgotten after two minutes', async () => {
  let t = 1_800_000_000_000;
  const clocked = new SqliteTaskStore(':memory:', { now: () => t });
  try {
    const g = new ReplayGuard(clocked, 300, () => t);
    assert.deepEqual(await clocked.claimReplay('key:k6', '6', 'p', t + 301_000), { claimed: true }); // never completed
    t += 121_000;
    const answer = await g.once({ key: key('k6'), nonce: { value: '6', atMs: t - 121_000 } }, 'p', async () => 'acted');
    assert.deepEqual([answer.body, answer.replayed], ['acted', false]);
  } finally {
    await clocked.close();
  }
});
