// File/Upload and File/Delete: what is stored, the URL Run accepts without a fetch (also behind a reverse
// proxy's LIKENESS_PUBLIC_URL), whose files a Run may read, and removal by the owner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { nextNonce, startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';
import { ownFileRef, uploadName } from '../../src/service/routes/file.js';

let s: TestService;
before(async () => {
  s = await startTestService();
});
after(async () => s.close());

async function upload(t: TestService, bytes: Uint8Array, name: string, headers = t.signedHeaders()) {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  const res = await fetch(`${t.url}/v1/File/Upload`, { method: 'POST', headers, body: form });
  return { status: res.status, json: (await res.json()) as { result: boolean; errors: { message: string }[]; list: Record<string, string>[] } };
}

test('an upload answers Wiro\'s list item; its URL serves the bytes and a Run reads it without fetching', async () => {
  const { json } = await upload(s, TINY_PNG, '../../etc/My Photo.PNG');
  assert.equal(json.result, true);
  const f = json.list[0]!;
  assert.deepEqual(Object.keys(f).sort(), ['accesskey', 'addedtime', 'contenttype', 'id', 'modifiedtime', 'name', 'parentid', 'size', 'url', 'uuid']);
  assert.equal(f.name, 'My-Photo.png', 'a name of our making');
  assert.equal(f.size, String(TINY_PNG.length));
  assert.match(f.url!, new RegExp(`^${s.url}/v1/File/[A-Za-z0-9]{30}/My-Photo\\.png$`));
  assert.deepEqual(Buffer.from(await (await fetch(f.url!)).arrayBuffer()), TINY_PNG);
  const run = await s.post('/v1/Run/test/scripted', { inputImageUrl: f.url });
  const task = await waitForTerminal(s, run.json.taskid as string);
  assert.equal(task.pexit, '0', String(task.debugerror)); // the test network knows no URL: this was read from the store
});

test('another project cannot run with the upload, nor delete it; the owner can, and then it is gone', async () => {
  const { json } = await upload(s, TINY_PNG, 'mine.png');
  const f = json.list[0]!;
  const other = await s.service.ctx.store.createProject('other-uploads', 'signature');
  const k = await s.service.ctx.store.createKey(other.id);
  const as = () => {
    const nonce = nextNonce();
    return { 'x-api-key': k.apiKey, 'x-nonce': nonce, 'x-signature': createHmac('sha256', k.apiKey).update(k.apiSecret! + nonce).digest('hex') };
  };
  const theirs = await s.post('/v1/Run/test/scripted', { inputImageUrl: f.url }, as());
  const read = async () => ((await s.post('/v1/Task/Detail', { taskid: theirs.json.taskid }, as())).json.tasklist as Record<string, unknown>[])[0]!;
  let detail = await read();
  while (!['task_postprocess_end', 'task_cancel'].includes(String(detail.status))) {
    await new Promise((r) => setTimeout(r, 20));
    detail = await read();
  }
  assert.equal(detail.pexit, '1');
  assert.match(String(detail.debugerror), /is not a file of this project on this server/);
  assert.equal((await s.post('/v1/File/Delete', { id: f.id }, as())).json.result, false);
  assert.equal((await s.post('/v1/File/Delete', { id: f.id })).json.result, true);
  assert.equal((await fetch(f.url!)).status, 404);
});

test('a non-image, or a body that is not multipart, is refused with what to send', async () => {
  const page = await upload(s, Buffer.from('<html></html>'), 'x.png');
  assert.equal(page.json.result, false);
  assert.match(page.json.errors[0]!.message, /Request files \[file\] .*images only/);
  const json = await s.post('/v1/File/Upload', { file: 'x' });
  assert.equal(json.status, 400);
  assert.match((json.json.errors as { message: string }[])[0]!.message, /multipart\/form-data with the image in a part named "file"/);
});

test('behind a reverse proxy: links use LIKENESS_PUBLIC_URL and Run still reads them directly', async () => {
  const proxied = await startTestService();
  try {
    proxied.service.ctx.config.publicUrl = 'https://likeness.example.org/api';
    const { json } = await upload(proxied, TINY_PNG, 'me.jpg');
    const url = json.list[0]!.url!;
    assert.match(url, /^https:\/\/likeness\.example\.org\/api\/v1\/File\//);
    const run = await proxied.post('/v1/Run/test/scripted', { inputImageUrl: url });
    assert.equal((await waitForTerminal(proxied, run.json.taskid as string)).pexit, '0');
  } finally {
    await proxied.close();
  }
});

test('own-link recognition and upload names', () => {
  assert.deepEqual(ownFileRef('http://h:1/v1/File/abcdefghijabcdefghijabcdefghij/a%20b.png', 'http://h:1'), { accessKey: 'abcdefghijabcdefghijabcdefghij', name: 'a b.png' });
  assert.equal(ownFileRef('http://evil/v1/File/abcdefghijabcdefghijabcdefghij/a.png', 'http://h:1'), undefined);
  assert.equal(ownFileRef('http://h:1/v1/File/short/a.png', 'http://h:1'), undefined);
  assert.equal(uploadName(undefined, 'image/jpeg'), 'upload.jpg');
  assert.equal(uploadName('photo.exe', 'image/png'), 'photo.png');
});
