// F9: callbacks live in a durable outbox. Each delivery is signed the Standard Webhooks way with the
// project's secret, keeps one webhook-id across its retries, is retried with capped exponential backoff,
// is recorded in callbackdelivery attempt by attempt, survives a restart between attempts, and never
// follows a redirect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffMs } from '../../src/service/callbacks.js';
import { startTestService, waitForTerminal, TINY_PNG } from '../helpers/service.js';
import { startServer } from '../net/helpers.js';

test('a callback is signed with the project secret (webhook-id, webhook-timestamp, webhook-signature) and keeps its id across retries', async () => {
  let failures = 1;
  const receiver = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(TINY_PNG),
    '/hook': (_q, res) => res.writeHead(failures-- > 0 ? 503 : 200).end(),
  });
  const s = await startTestService({ realNetwork: true, config: { fetchAllow: ['127.0.0.1'], callbackBackoffBaseMs: 20 } });
  try {
    const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: receiver.url('/face.png'), callbackUrl: receiver.url('/hook') });
    await waitForTerminal(s, json.taskid as string);
    await s.service.callbacks.idle();
    const posts = receiver.requests.filter((r) => r.path === '/hook');
    assert.equal(posts.length, 2);
    const secret = await s.service.ctx.store.webhookSecret(1);
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    for (const post of posts) {
      const id = String(post.headers['webhook-id']);
      const timestamp = String(post.headers['webhook-timestamp']);
      assert.ok(Math.abs(Number(timestamp) - Date.now() / 1000) < 60);
      const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
        .update(`${id}.${timestamp}.${post.body.toString('utf8')}`).digest('base64');
      assert.equal(post.headers['webhook-signature'], `v1,${expected}`);
    }
    assert.equal(posts[0]!.headers['webhook-id'], posts[1]!.headers['webhook-id']);
    const detail = ((await s.post('/v1/Task/Detail', { taskid: json.taskid })).json.tasklist as Record<string, unknown>[])[0]!;
    assert.deepEqual([(detail.callbackdelivery as { ok: boolean }).ok, (detail.callbackdelivery as { attempts: number }).attempts], [true, 2]);
  } finally {
    await s.close();
    await receiver.close();
  }
});

test('a delivery pending when the server stops is made by the next start, with its attempts recorded', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-outbox-'));
  let down = true;
  const receiver = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(TINY_PNG),
    '/hook': (_q, res) => res.writeHead(down ? 503 : 200).end(),
  });
  const config = { fetchAllow: ['127.0.0.1'], callbackBackoffBaseMs: 600 };
  try {
    const first = await startTestService({ home, realNetwork: true, config });
    const { json } = await first.post('/v1/Run/test/scripted', { inputImageUrl: receiver.url('/face.png'), callbackUrl: receiver.url('/hook') });
    await waitForTerminal(first, json.taskid as string);
    for (let i = 0; i < 200 && !(await first.service.ctx.store.getTaskById(Number(json.taskid)))!.callback; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual((await first.service.ctx.store.getTaskById(Number(json.taskid)))!.callback?.attempts, 1);
    await first.close(); // the retry is 600 ms away: it belongs to the next life now
    down = false;
    const second = await startTestService({ home, realNetwork: true, config });
    try {
      await second.service.callbacks.idle();
      const record = (await second.service.ctx.store.getTaskById(Number(json.taskid)))!.callback!;
      assert.deepEqual([record.ok, record.attempts, record.lastStatus], [true, 2, 200]);
      assert.equal(receiver.requests.filter((r) => r.path === '/hook').length, 2);
    } finally {
      await second.close();
    }
  } finally {
    await receiver.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('a callback answered with a redirect is not followed and not retried', async () => {
  const receiver = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(TINY_PNG),
    '/moved': (_q, res) => res.writeHead(302, { location: '/elsewhere' }).end(),
    '/elsewhere': (_q, res) => res.writeHead(200).end(),
  });
  const s = await startTestService({ realNetwork: true, config: { fetchAllow: ['127.0.0.1'], callbackBackoffBaseMs: 20 } });
  try {
    const { json } = await s.post('/v1/Run/test/scripted', { inputImageUrl: receiver.url('/face.png'), callbackUrl: receiver.url('/moved') });
    await waitForTerminal(s, json.taskid as string);
    await s.service.callbacks.idle();
    const record = (await s.service.ctx.store.getTaskById(Number(json.taskid)))!.callback!;
    assert.deepEqual([record.ok, record.attempts, record.lastStatus], [false, 1, 302]);
    assert.match(String(record.lastError), /do not follow redirects/);
    assert.equal(receiver.requests.filter((r) => r.path === '/elsewhere').length, 0);
  } finally {
    await s.close();
    await receiver.close();
  }
});

test('retries back off exponentially from the base, up to the cap', () => {
  const policy = { maxAttempts: 10, backoffBaseMs: 1000, backoffCapMs: 30_000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(policy, n)), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});
