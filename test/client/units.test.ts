// The client's pure parts and its retry policy, with a scripted fetch (no server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { ApiError, LikenessClient, NonceSource, authHeaders, defaultPollInterval, progressOf, safeFileName, taskRef } from '../../src/client/index.js';
import { retryAfterMs } from '../../src/client/transport.js';
import { ProgressDisplay } from '../../src/client/terminal.js';

test('nonces are millisecond timestamps that strictly increase, even within one millisecond or when the clock steps back', () => {
  let now = 1_700_000_000_000;
  const nonces = new NonceSource(() => now);
  const seen = Array.from({ length: 2500 }, () => nonces.next());
  now -= 5;
  seen.push(nonces.next());
  const numbers = seen.map(Number);
  assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!));
  assert.equal(seen[0], '1700000000000');
  now += 10_000;
  assert.equal(nonces.next(), String(now), 'back on the clock once it has caught up');
});

test('the signature is hex HMAC-SHA256 keyed by the API key over secret + nonce', () => {
  const h = authHeaders('key', 'secret');
  assert.equal(h['x-signature'], createHmac('sha256', 'key').update(`secret${h['x-nonce']}`).digest('hex'));
  assert.deepEqual(authHeaders('key', undefined), { 'x-api-key': 'key' });
});

test('the poll schedule is 2 s for 15 s, then 5 s until a minute, then 10 s', () => {
  assert.deepEqual([0, 14_999, 15_000, 59_999, 60_000, 600_000].map(defaultPollInterval), [2000, 2000, 5000, 5000, 10_000, 10_000]);
});

test('progress is read from an object or a JSON string; other messages are not progress', () => {
  const p = { type: 'progressGenerate', task: 'Generate', percentage: '60', stepCurrent: '6', stepTotal: '10', speed: '1.2', speedType: 'it/s', elapsedTime: '5s', remainingTime: '3s' };
  assert.deepEqual(progressOf(p), p);
  assert.deepEqual(progressOf(JSON.stringify(p)), p);
  assert.equal(progressOf('a stdout line'), undefined);
  assert.equal(progressOf(null), undefined);
});

test('a number names a task id, anything else a token', () => {
  assert.deepEqual(taskRef('2221'), { taskid: '2221' });
  assert.deepEqual(taskRef(7), { taskid: '7' });
  assert.deepEqual(taskRef('eDcCm5yyUfIvMFspTwww49OUfgXkQt'), { tasktoken: 'eDcCm5yyUfIvMFspTwww49OUfgXkQt' });
});

test('safe file names: no directories, no dot names, no devices, bounded length', () => {
  assert.equal(safeFileName('0.png', 'x'), '0.png');
  assert.equal(safeFileName('../../etc/passwd', 'x'), 'passwd');
  assert.equal(safeFileName('a\\b\\c.png', 'x'), 'c.png');
  assert.equal(safeFileName('..', 'fallback.png'), 'fallback.png');
  assert.equal(safeFileName('.hidden', 'x'), 'hidden');
  assert.equal(safeFileName('con.png', 'x'), '_con.png');
  assert.equal(safeFileName('bad\u0000na:me?.png', 'x'), 'bad_na_me_.png');
  assert.equal(safeFileName('résumé.png', 'x'), 'résumé.png');
  const long = safeFileName(`${'a'.repeat(500)}.png`, 'x');
  assert.equal(long.length, 150);
  assert.ok(long.endsWith('.png'));
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.equal(retryAfterMs('2'), 2000);
  assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
  assert.equal(retryAfterMs(null), undefined);
  assert.equal(retryAfterMs('soon'), undefined);
});

/** A fetch that answers from a script and records what was asked. */
function scripted(answers: { status: number; body: unknown; headers?: Record<string, string> }[]) {
  const calls: { url: string; headers: Record<string, string> }[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push({ url: String(input), headers: { ...(init?.headers as Record<string, string>) } });
    const a = answers[Math.min(calls.length - 1, answers.length - 1)]!;
    return new Response(JSON.stringify(a.body), { status: a.status, headers: a.headers });
  };
  return { calls, fetch: fetch as typeof globalThis.fetch };
}

const TASK = { id: '1', socketaccesstoken: 't', status: 'task_queue', outputs: [] };

test('reads are retried on 429 and 5xx, honouring Retry-After, each attempt signed anew', async () => {
  const { calls, fetch } = scripted([
    { status: 503, body: { result: false, errors: [] } },
    { status: 429, body: { result: false, errors: [{ code: 0, message: 'slow down' }] }, headers: { 'retry-after': '0' } },
    { status: 200, body: { result: true, errors: [], total: '1', tasklist: [TASK] } },
  ]);
  const client = new LikenessClient({ baseUrl: 'http://likeness.test/v1', apiKey: 'k', apiSecret: 's', fetch, retryBaseMs: 1 });
  const task = await client.detail({ taskid: 1 });
  assert.equal(task.id, '1');
  assert.equal(calls.length, 3);
  assert.equal(calls[0]!.url, 'http://likeness.test/v1/Task/Detail');
  assert.equal(new Set(calls.map((c) => c.headers['x-nonce'])).size, 3);
});

test('Run is never retried: a 503 is thrown at once', async () => {
  const { calls, fetch } = scripted([{ status: 503, body: { result: false, errors: [{ code: 0, message: 'busy' }] }, headers: { 'retry-after': '1' } }]);
  const client = new LikenessClient({ baseUrl: 'http://likeness.test', apiKey: 'k', apiSecret: 's', fetch, retryBaseMs: 1 });
  const err = await client.run('wiro', 'instant-id-controlnet-lora', { prompt: 'x' }).catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.httpStatus, 503);
  assert.equal(err.retryAfterMs, 1000);
  assert.equal(calls.length, 1);
});

test('result:false with HTTP 200 is an ApiError, not retried', async () => {
  const { calls, fetch } = scripted([{ status: 200, body: { result: false, errors: [{ code: 1, message: 'There is no task yet.' }] } }]);
  const client = new LikenessClient({ baseUrl: 'http://likeness.test', apiKey: 'k', fetch, retryBaseMs: 1 });
  const err = await client.detail({ tasktoken: 'x' }).catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 1);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.headers['x-signature'], undefined, 'an API-key-only client sends no signature');
});

test('the default socket is the base URL\'s host at /v1, and Wiro\'s own for api.wiro.ai', () => {
  assert.equal(new LikenessClient({ baseUrl: 'http://127.0.0.1:8787', apiKey: 'k' }).socketUrl, 'ws://127.0.0.1:8787/v1');
  assert.equal(new LikenessClient({ baseUrl: 'https://likeness.example/', apiKey: 'k' }).socketUrl, 'wss://likeness.example/v1');
  assert.equal(new LikenessClient({ baseUrl: 'https://api.wiro.ai/v1', apiKey: 'k' }).socketUrl, 'wss://socket.wiro.ai/v1');
});

test('on a TTY progress rewrites one line; done() ends it', () => {
  let text = '';
  const display = new ProgressDisplay({ write: (t: string) => (text += t), isTTY: true, columns: 80 }, 'task 7');
  display.event({ type: 'task_start', message: null, result: true });
  display.progress({ type: 'progressGenerate', task: 'Generate', percentage: '50', stepCurrent: '1', stepTotal: '2', speed: '2.00', speedType: 'it/s', elapsedTime: '1s', remainingTime: '1s' });
  display.done();
  assert.equal(text, '\r\x1b[2Ktask 7: started\r\x1b[2Ktask 7: Generate step 1/2 · 50% · 2.00 it/s · 1s elapsed · 1s left\n');
});
