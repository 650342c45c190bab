import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SIGNATURE_HEADER, deliverCallback, signCallbackBody, type CallbackOptions } from '../../src/net/callback.js';
import { LOOPBACK_ALLOW, closedPort, startServer, type TestServer } from './helpers.js';

const TASK = { id: '42', status: 'task_postprocess_end', pexit: '0', outputs: [{ name: '0.png' }] };
let server: TestServer;
let flakyCalls = 0;

before(async () => {
  server = await startServer({
    '/hook': (_req, res) => res.writeHead(200).end('ok'),
    '/accepted': (_req, res) => res.writeHead(204).end(),
    '/flaky': (_req, res) => res.writeHead(++flakyCalls < 3 ? 500 : 200).end(),
    '/down': (_req, res) => res.writeHead(503).end(),
    '/moved': (_req, res) => res.writeHead(301, { location: '/hook' }).end(),
    '/silent': () => undefined, // never answers
  });
});

after(() => server.close());

const fast: CallbackOptions = { policy: { allow: LOOPBACK_ALLOW }, backoffMs: [10, 20] };

function hitsOf(path: string): number {
  return server.hits.filter((p) => p === path).length;
}

test('the task is POSTed as JSON and the delivery recorded', async () => {
  const d = await deliverCallback(server.url('/hook'), TASK, fast);
  assert.equal(d.ok, true);
  assert.equal(d.attempts, 1);
  assert.equal(d.lastStatus, 200);
  assert.ok(d.deliveredAt !== undefined && !Number.isNaN(Date.parse(d.deliveredAt)));
  const req = server.requests.at(-1);
  assert.equal(req?.method, 'POST');
  assert.equal(req?.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(req?.body.toString() ?? ''), TASK);
  assert.equal(req?.headers[SIGNATURE_HEADER], undefined);
});

test('any 2xx answer counts as delivered', async () => {
  assert.equal((await deliverCallback(server.url('/accepted'), TASK, fast)).ok, true);
});

test('a callback answered 500 is retried with backoff until delivered', async () => {
  const d = await deliverCallback(server.url('/flaky'), TASK, fast);
  assert.deepEqual([d.ok, d.attempts, d.lastStatus], [true, 3, 200]);
  assert.equal(hitsOf('/flaky'), 3);
});

test('after 3 failed attempts delivery gives up, and the record says why', async () => {
  const before = hitsOf('/down');
  const d = await deliverCallback(server.url('/down'), TASK, fast);
  assert.equal(d.ok, false);
  assert.equal(d.attempts, 3);
  assert.equal(d.lastStatus, 503);
  assert.equal(d.lastErrorCode, 'callback_status');
  assert.match(d.lastError ?? '', /callbackUrl http:\/\/127\.0\.0\.1:\d+\/down answered HTTP 503/);
  assert.equal(d.deliveredAt, undefined);
  assert.equal(hitsOf('/down') - before, 3);
});

test('a refused connection is retried and recorded', async () => {
  const d = await deliverCallback(`http://127.0.0.1:${await closedPort()}/hook`, TASK, fast);
  assert.deepEqual([d.ok, d.attempts, d.lastErrorCode], [false, 3, 'url_connect']);
});

test('a receiver that never answers times out', async () => {
  const d = await deliverCallback(server.url('/silent'), TASK, { ...fast, attempts: 1, policy: { allow: LOOPBACK_ALLOW, timeoutMs: 200 } });
  assert.deepEqual([d.ok, d.lastErrorCode], [false, 'url_timeout']);
});

test('a private callbackUrl is refused without the allowlist, in one attempt, without throwing', async () => {
  const before = hitsOf('/hook');
  const d = await deliverCallback(server.url('/hook'), TASK, { backoffMs: [10] });
  assert.deepEqual([d.ok, d.attempts, d.lastErrorCode], [false, 1, 'url_blocked_address']);
  assert.match(d.lastError ?? '', /loopback address/);
  assert.equal(hitsOf('/hook'), before);
  const metadata = await deliverCallback('http://169.254.169.254/latest/', TASK, {});
  assert.deepEqual([metadata.ok, metadata.lastErrorCode], [false, 'url_blocked_address']);
});

test('a malformed or non-http callbackUrl is recorded, not thrown', async () => {
  assert.equal((await deliverCallback('not a url', TASK, fast)).lastErrorCode, 'url_invalid');
  assert.equal((await deliverCallback('file:///etc/passwd', TASK, fast)).lastErrorCode, 'url_scheme');
});

test('redirects are not followed: the record says to give the final URL', async () => {
  const d = await deliverCallback(server.url('/moved'), TASK, fast);
  assert.deepEqual([d.ok, d.attempts, d.lastStatus], [false, 1, 301]);
  assert.match(d.lastError ?? '', /do not follow redirects/);
});

test('with a secret, the body carries an HMAC-SHA256 signature header', async () => {
  await deliverCallback(server.url('/hook'), TASK, { ...fast, sign: { secret: 's3cret' } });
  const req = server.requests.at(-1);
  assert.equal(req?.headers[SIGNATURE_HEADER], signCallbackBody(req?.body ?? '', 's3cret'));
  assert.match(String(req?.headers[SIGNATURE_HEADER]), /^sha256=[0-9a-f]{64}$/);
});

test('cancelling stops the retries', async () => {
  const controller = new AbortController();
  const pending = deliverCallback(server.url('/down'), TASK, { ...fast, backoffMs: [5000], signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  const d = await pending;
  assert.deepEqual([d.ok, d.attempts, d.lastErrorCode], [false, 1, 'url_aborted']);
});
