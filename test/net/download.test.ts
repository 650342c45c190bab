import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FetchError, guardedDownload } from '../../src/net/guarded-fetch.js';
import { LOOPBACK_ALLOW, startServer, type TestServer } from './helpers.js';

const WEIGHTS = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
const ETAG = '"lora-v1"';
const MODIFIED = 'Wed, 01 Jan 2025 00:00:00 GMT';
let server: TestServer;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'likeness-net-'));
  server = await startServer({
    '/lora.safetensors': (req, res) => {
      const fresh = req.headers['if-none-match'] === ETAG || req.headers['if-modified-since'] === MODIFIED;
      if (fresh) return void res.writeHead(304, { etag: ETAG }).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', etag: ETAG, 'last-modified': MODIFIED });
      // Several writes, so the file is streamed in pieces.
      for (let i = 0; i < WEIGHTS.length; i += 65536) res.write(WEIGHTS.subarray(i, i + 65536));
      res.end();
    },
    '/unconditional-304': (_req, res) => res.writeHead(304).end(),
  });
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const opts = { allow: LOOPBACK_ALLOW, label: 'selectedLoraModelPrivateUrl' };

test('a download streams to the file and reports its size, hash and validators', async () => {
  const path = join(dir, 'a.safetensors');
  const r = await guardedDownload(server.url('/lora.safetensors'), path, opts);
  assert.equal(r.notModified, false);
  if (r.notModified) return;
  assert.equal(r.size, WEIGHTS.length);
  assert.equal(r.sha256, createHash('sha256').update(WEIGHTS).digest('hex'));
  assert.equal(r.etag, ETAG);
  assert.equal(r.lastModified, MODIFIED);
  assert.deepEqual(await readFile(path), WEIGHTS);
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.part')), []);
});

test('a conditional download with a matching ETag is reported as not modified and leaves the file alone', async () => {
  const path = join(dir, 'cached.safetensors');
  await writeFile(path, 'cached copy');
  const r = await guardedDownload(server.url('/lora.safetensors'), path, { ...opts, ifNoneMatch: ETAG });
  assert.equal(r.notModified, true);
  assert.equal(r.status, 304);
  assert.equal(server.requests.at(-1)?.headers['if-none-match'], ETAG);
  assert.equal(await readFile(path, 'utf8'), 'cached copy');
});

test('If-Modified-Since is sent as an HTTP date and a 304 is not modified', async () => {
  const r = await guardedDownload(server.url('/lora.safetensors'), join(dir, 'b'), { ...opts, ifModifiedSince: new Date(MODIFIED) });
  assert.equal(r.notModified, true);
  assert.equal(server.requests.at(-1)?.headers['if-modified-since'], MODIFIED);
});

test('a stale validator gets the new file', async () => {
  const r = await guardedDownload(server.url('/lora.safetensors'), join(dir, 'c'), { ...opts, ifNoneMatch: '"old"' });
  assert.equal(r.notModified, false);
});

test('a 304 to a request that was not conditional is an error', async () => {
  await assert.rejects(guardedDownload(server.url('/unconditional-304'), join(dir, 'd'), opts), (err: FetchError) => err.code === 'url_status');
});

test('a download over the limit leaves neither the file nor a partial file behind', async () => {
  const path = join(dir, 'too-big.safetensors');
  await assert.rejects(
    guardedDownload(server.url('/lora.safetensors'), path, { ...opts, maxBytes: 100_000 }),
    (err: FetchError) => err.code === 'url_too_large',
  );
  const left = await readdir(dir);
  assert.ok(!left.some((f) => f.startsWith('too-big')), left.join(', '));
});

test('a download into a folder that does not exist fails as a write error, not a crash', async () => {
  await assert.rejects(
    guardedDownload(server.url('/lora.safetensors'), join(dir, 'no-such-folder', 'x.safetensors'), opts),
    (err: FetchError) => err.code === 'download_write' && /could not be saved on this server \(ENOENT\)/.test(err.message),
  );
});
