// F6: a server that trickles its body (a byte now and then, never silent long enough for the idle
// timeout) is cut off once its average rate stays below the policy's minimum, for images and large
// downloads alike, instead of holding the worker for the whole-fetch timeout (30 min for LoRAs).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_DOWNLOAD_POLICY, FetchError, IMAGE_FETCH_POLICY, guardedDownload, guardedFetch } from '../../src/net/guarded-fetch.js';
import { LOOPBACK_ALLOW, startServer, type TestServer } from './helpers.js';

let server: TestServer;
const timers = new Set<NodeJS.Timeout>();
before(async () => {
  server = await startServer({
    '/trickle': (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
      const timer = setInterval(() => res.write('x'), 50);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    },
    '/fast': (_q, res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(64 * 1024)),
  });
});
after(async () => {
  for (const t of timers) clearInterval(t);
  await server.close();
});

const slowPolicy = { allow: LOOPBACK_ALLOW, minBytesPerSecond: 1024, slowGraceMs: 300, idleTimeoutMs: 5000, timeoutMs: 20_000 };

test('a trickling image URL fails with url_too_slow soon after the grace period, naming the rates', async () => {
  const t0 = Date.now();
  await assert.rejects(guardedFetch(server.url('/trickle'), slowPolicy), (err: Error) => {
    assert.ok(err instanceof FetchError);
    assert.equal(err.code, 'url_too_slow');
    assert.match(err.message, /below the 1 KB\/s minimum/);
    return true;
  });
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});

test('a trickling download is cut off the same way and leaves no partial file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'likeness-slow-'));
  try {
    await assert.rejects(guardedDownload(server.url('/trickle'), join(dir, 'lora.safetensors'), slowPolicy), (err: Error) => {
      assert.ok(err instanceof FetchError);
      assert.equal(err.code, 'url_too_slow');
      return true;
    });
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a fast transfer is not affected, and both default policies set a minimum rate', async () => {
  const r = await guardedFetch(server.url('/fast'), slowPolicy);
  assert.equal(r.bytes.length, 64 * 1024);
  assert.ok((IMAGE_FETCH_POLICY.minBytesPerSecond ?? 0) > 0);
  assert.ok((FILE_DOWNLOAD_POLICY.minBytesPerSecond ?? 0) > 0);
});
