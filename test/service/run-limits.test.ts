// F2, F13, F17: what a Run body may carry. Undeclared fields are dropped and never stored, every stored
// field and the whole record have size limits, malformed multipart and deep JSON are a clear 4xx (never a
// 500 with a stack), an oversized file says so, and a file input sent twice is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';

const RUN = '/v1/Run/test/scripted';
const FIELD = 8 * 1024;
let s: TestService;
before(async () => {
  s = await startTestService({ config: { maxFieldBytes: FIELD, maxTaskRecordBytes: 16 * 1024, maxImageBytes: 32 * 1024 } });
});
after(async () => {
  await s.close();
});

async function taskCount(): Promise<number> {
  return (await s.service.ctx.store.listTasks(1, 0, 1)).total;
}

function storedRow(taskid: string): { parameters: string; params: string } {
  const db = new Database(join(s.home, 'likeness.db'), { readonly: true });
  try {
    return db.prepare('SELECT parameters, params FROM tasks WHERE id = ?').get(Number(taskid)) as { parameters: string; params: string };
  } finally {
    db.close();
  }
}

async function postForm(form: FormData): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(s.url + RUN, { method: 'POST', headers: s.signedHeaders(), body: form });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A raw multipart body, for the malformed cases fetch's FormData cannot produce. */
async function postRaw(contentType: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(s.url + RUN, { method: 'POST', headers: { ...s.signedHeaders(), 'content-type': contentType }, body });
  return { status: res.status, text: await res.text() };
}

const messages = (json: Record<string, unknown>) => (json.errors as { message: string }[]).map((e) => e.message).join(' | ');

test('JSON: thousands of undeclared fields are dropped; only declared ones are stored', async () => {
  const body: Record<string, unknown> = { mode: 'ok', steps: 2 };
  for (let i = 0; i < 3000; i++) body[`junk${i}`] = 'x'.repeat(20);
  const { json } = await s.post(RUN, body);
  assert.equal(json.result, true, JSON.stringify(json));
  const task = await waitForTerminal(s, json.taskid as string);
  assert.deepEqual(Object.keys(task.parameters as object).sort(), ['mode', 'steps']);
  assert.ok(!storedRow(json.taskid as string).parameters.includes('junk'), 'an undeclared field reached the database');
});

test('multipart: undeclared fields are dropped, never stored', async () => {
  const form = new FormData();
  form.set('mode', 'ok');
  for (let i = 0; i < 20; i++) form.set(`junk${i}`, 'y'.repeat(FIELD - 10));
  const { json } = await postForm(form);
  assert.equal(json.result, true, JSON.stringify(json));
  const row = storedRow(json.taskid as string);
  assert.ok(row.parameters.length < 200, `stored ${row.parameters.length} bytes of parameters`);
  assert.ok(!row.parameters.includes('junk'));
});

test('a multipart field over the field limit is refused with 413 (not truncated and run)', async () => {
  const before = await taskCount();
  const form = new FormData();
  form.set('mode', 'ok'.padEnd(FIELD + 1, ' '));
  const { status, json } = await postForm(form);
  assert.equal(status, 413);
  assert.match(messages(json), /\[mode\] is longer than 8192 bytes/);
  assert.equal(await taskCount(), before);
});

test('a JSON string over the field limit is refused with 413', async () => {
  const { status, json } = await s.post(RUN, { mode: 'ok', inputImageUrl: `https://images.example/${'a'.repeat(FIELD)}.png` });
  assert.equal(status, 413);
  assert.match(messages(json), /\[inputImageUrl\] is longer than/);
});

test('a task record over its limit is refused with 413, naming the setting', async () => {
  const parts = Array.from({ length: 3 }, () => 'z'.repeat(FIELD - 100));
  const { status, json } = await s.post(RUN, { mode: 'ok', inputImageUrl: parts });
  assert.equal(status, 413);
  assert.match(messages(json), /LIKENESS_MAX_TASK_RECORD_BYTES/);
});

test('malformed multipart answers 400 with a reason and no stack: boundary mismatch, no closing boundary', async () => {
  const mismatch = await postRaw('multipart/form-data; boundary=AAA', '--BBB\r\nContent-Disposition: form-data; name="mode"\r\n\r\nok\r\n--BBB--\r\n');
  const unclosed = await postRaw('multipart/form-data; boundary=AAA', '--AAA\r\nContent-Disposition: form-data; name="mode"\r\n\r\nok');
  for (const r of [mismatch, unclosed]) {
    assert.ok(r.status === 400, `answered ${r.status}: ${r.text}`);
    assert.doesNotMatch(r.text, /\s+at\s+\S+\s+\(|node_modules|\/work\//);
  }
  assert.match(unclosed.text, /multipart body is malformed/);
});

test('a file over the image limit says it is too large (413), not "not an image"', async () => {
  const big = Buffer.concat([TINY_PNG, Buffer.alloc(40 * 1024)]);
  const form = new FormData();
  form.set('inputImage', new Blob([big]), 'face.png');
  const { status, json } = await postForm(form);
  assert.equal(status, 413);
  assert.match(messages(json), /\[inputImage\] is larger than 32768 bytes/);
});

test('two parts for one file input are refused, not one silently used', async () => {
  const before = await taskCount();
  const form = new FormData();
  form.append('inputImage', new Blob([TINY_PNG]), 'a.png');
  form.append('inputImage', new Blob([TINY_PNG]), 'b.png');
  const { status, json } = await postForm(form);
  assert.equal(status, 400);
  assert.match(messages(json), /\[inputImage\] was sent more than once/);
  assert.equal(await taskCount(), before);
});

test('JSON nested 100,000 deep is refused with 400, not a 500', async () => {
  const deep = `{"mode":"ok","junk":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const res = await fetch(s.url + RUN, { method: 'POST', headers: { ...s.signedHeaders(), 'content-type': 'application/json' }, body: deep });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /nests 100001 levels deep; at most 32/);
});
