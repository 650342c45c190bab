import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { FetchError, IMAGE_CONTENT_TYPES, guardedFetch, type FetchOptions } from '../../src/net/guarded-fetch.js';
import { LOOPBACK_ALLOW, fakeDns, startServer, type TestServer } from './helpers.js';

let server: TestServer;
const PNG_BYTES = Buffer.from('\x89PNG\r\n\x1a\nnot really', 'latin1');

before(async () => {
  server = await startServer({
    '/face.png': (_req, res) => res.writeHead(200, { 'content-type': 'image/png', etag: '"v1"' }).end(PNG_BYTES),
    '/page.html': (_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html></html>'),
    '/missing': (_req, res) => res.writeHead(404).end('nope'),
    '/private': (_req, res) => res.writeHead(403).end(),
    '/broken': (_req, res) => res.writeHead(500).end(),
    '/secret': (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end('internal secret'),
    '/r1': (_req, res) => res.writeHead(302, { location: '/r2' }).end(),
    '/r2': (_req, res) => res.writeHead(301, { location: '/r3' }).end(),
    '/r3': (_req, res) => res.writeHead(307, { location: '/face.png' }).end(),
    '/loop-a': (_req, res) => res.writeHead(302, { location: '/loop-b' }).end(),
    '/loop-b': (_req, res) => res.writeHead(302, { location: '/loop-a' }).end(),
    '/to-ftp': (_req, res) => res.writeHead(302, { location: 'ftp://example.com/x' }).end(),
    '/to-private': (_req, res) => res.writeHead(302, { location: 'http://10.0.0.5/a.jpg' }).end(),
    '/to-loopback': (req, res) => res.writeHead(302, { location: `http://127.0.0.1:${req.socket.localPort}/secret` }).end(),
    '/big-declared': (_req, res) => res.writeHead(200, { 'content-type': 'image/png', 'content-length': '5000' }).end(Buffer.alloc(5000)),
    '/big-streamed': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' }); // chunked: no Content-Length
      const pump = (): void => {
        while (!res.destroyed && res.write(Buffer.alloc(1024)));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    },
    '/stall': (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).write('x'),
    '/drip': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write('x')), 30);
    },
    '/gzip': (_req, res) => res.writeHead(200, { 'content-type': 'image/png', 'content-encoding': 'gzip' }).end(gzipSync(PNG_BYTES)),
    '/gzip-bomb': (_req, res) =>
      res.writeHead(200, { 'content-type': 'image/png', 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(1024 * 1024))),
  });
});

after(() => server.close());

const allowed: FetchOptions = { allow: LOOPBACK_ALLOW, label: 'inputImageUrl' };

async function fetchError(url: string, opts: FetchOptions): Promise<FetchError> {
  try {
    await guardedFetch(url, opts);
  } catch (err) {
    assert.ok(err instanceof FetchError, `expected a FetchError, got ${String(err)}`);
    return err;
  }
  assert.fail(`fetching ${url} should have failed`);
}

test('fetches a file from an allowlisted server with its type, status and headers', async () => {
  const r = await guardedFetch(server.url('/face.png'), { ...allowed, accept: IMAGE_CONTENT_TYPES });
  assert.deepEqual(r.bytes, PNG_BYTES);
  assert.equal(r.contentType, 'image/png');
  assert.equal(r.status, 200);
  assert.equal(r.finalUrl, server.url('/face.png'));
  assert.equal(r.headers.etag, '"v1"');
});

test('loopback is refused without the allowlist, before any request is sent', async () => {
  const before = server.hits.length;
  const err = await fetchError(server.url('/secret'), { label: 'inputImageUrl' });
  assert.equal(err.code, 'url_blocked_address');
  assert.match(err.message, /^inputImageUrl http:\/\/127\.0\.0\.1:\d+\/secret resolves to a loopback address \(127\.0\.0\.1\)/);
  assert.match(err.message, /LIKENESS_FETCH_ALLOW/);
  assert.equal(server.hits.length, before);
});

test('private, link-local, metadata, CGNAT and IPv6 local literals are refused by default', async () => {
  const urls = [
    'http://10.0.0.5/a.jpg',
    'http://172.16.3.4/a.jpg',
    'http://192.168.0.1/a.jpg',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.100.100.200/latest/meta-data/',
    'http://100.64.0.1/',
    'http://0.0.0.0/',
    'http://[::1]/',
    'http://[::]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://[fe80::1]/',
    'http://[fc00::1]/',
    'http://[64:ff9b::a00:5]/',
    'http://2130706433/', // 127.0.0.1 as one number: the URL parser normalises it
    'http://0x7f.1/',
  ];
  for (const url of urls) {
    const err = await fetchError(url, { timeoutMs: 2000 });
    assert.equal(err.code, 'url_blocked_address', url);
  }
  const err = await fetchError('http://10.0.0.5/a.jpg', { label: 'inputImageUrl' });
  assert.equal(
    err.message,
    'inputImageUrl http://10.0.0.5/a.jpg resolves to a private address (10.0.0.5); Likeness only fetches public URLs. An operator can allow it with LIKENESS_FETCH_ALLOW',
  );
});

test('a hostname resolving to a private address is refused', async () => {
  const err = await fetchError('http://evil.example/a.jpg', { resolve: fakeDns({ 'evil.example': ['10.0.0.5'] }) });
  assert.equal(err.code, 'url_blocked_address');
  assert.equal(err.address, '10.0.0.5');
  assert.match(err.message, /resolves to a private address \(10\.0\.0\.5\)/);
});

test('every resolved address is checked: one private answer among public ones refuses the host', async () => {
  const err = await fetchError('http://mixed.example/a.jpg', { resolve: fakeDns({ 'mixed.example': ['93.184.216.34', '127.0.0.1'] }) });
  assert.equal(err.code, 'url_blocked_address');
  assert.equal(err.address, '127.0.0.1');
});

test('the connection goes to the address that was checked, resolved once', async () => {
  const dns = fakeDns({ 'files.example': ['127.0.0.1'] });
  const r = await guardedFetch(server.urlAs('files.example', '/face.png'), { allow: ['files.example'], resolve: dns });
  assert.deepEqual(r.bytes, PNG_BYTES);
  assert.deepEqual(dns.calls, ['files.example']);
  assert.equal(server.requests.at(-1)?.headers.host, `files.example:${server.port}`);
});

test('an allowlisted hostname still may not resolve to a metadata address', async () => {
  const err = await fetchError('http://meta.example/', { allow: ['meta.example'], resolve: fakeDns({ 'meta.example': ['169.254.169.254'] }) });
  assert.equal(err.code, 'url_blocked_address');
  assert.match(err.message, /cloud metadata address/);
});

test('a host that does not resolve is a DNS error', async () => {
  const err = await fetchError('http://nowhere.example/a.jpg', { resolve: fakeDns({}) });
  assert.equal(err.code, 'url_dns');
  assert.match(err.message, /nowhere\.example could not be resolved/);
});

test('only http and https are fetched', async () => {
  for (const url of ['ftp://example.com/a.jpg', 'file:///etc/passwd', 'data:image/png;base64,iVBORw0KGgo=', 'gopher://x/']) {
    assert.equal((await fetchError(url, {})).code, 'url_scheme', url);
  }
});

test('credentials in a URL are refused and never repeated in the message', async () => {
  const err = await fetchError('http://alice:hunter2@127.0.0.1/a.jpg', allowed);
  assert.equal(err.code, 'url_credentials');
  assert.doesNotMatch(err.message, /hunter2|alice/);
});

test('query strings (presigned signatures) are left out of messages', async () => {
  const err = await fetchError(`${server.url('/missing')}?X-Amz-Signature=topsecret`, allowed);
  assert.equal(err.code, 'url_status');
  assert.doesNotMatch(err.message, /topsecret/);
  assert.match(err.message, /\/missing\?…/);
});

test('text that is not a URL is url_invalid', async () => {
  assert.equal((await fetchError('face.jpg', {})).code, 'url_invalid');
  assert.equal((await fetchError('http://', {})).code, 'url_invalid');
});

test('redirects are followed, and finalUrl is where the file came from', async () => {
  const r = await guardedFetch(server.url('/r1'), allowed);
  assert.deepEqual(r.bytes, PNG_BYTES);
  assert.equal(r.finalUrl, server.url('/face.png'));
});

test('a redirect from an allowed host to loopback is refused, and the target is never requested', async () => {
  const dns = fakeDns({ 'cdn.example': ['127.0.0.1'] });
  const err = await fetchError(server.urlAs('cdn.example', '/to-loopback'), { allow: ['cdn.example'], resolve: dns, label: 'inputImageUrl' });
  assert.equal(err.code, 'url_blocked_address');
  assert.match(err.message, /redirected to http:\/\/127\.0\.0\.1:\d+\/secret\) resolves to a loopback address/);
  assert.ok(!server.hits.includes('/secret'));
});

test('a redirect to a private address is refused', async () => {
  const err = await fetchError(server.url('/to-private'), allowed);
  assert.equal(err.code, 'url_blocked_address');
  assert.equal(err.address, '10.0.0.5');
});

test('a redirect to another scheme is refused', async () => {
  assert.equal((await fetchError(server.url('/to-ftp'), allowed)).code, 'url_scheme');
});

test('a redirect loop is detected', async () => {
  const err = await fetchError(server.url('/loop-a'), allowed);
  assert.equal(err.code, 'url_redirects');
  assert.match(err.message, /loop/);
});

test('more redirects than the policy allows are refused', async () => {
  const err = await fetchError(server.url('/r1'), { ...allowed, maxRedirects: 2 });
  assert.equal(err.code, 'url_redirects');
  assert.match(err.message, /more than 2 times/);
});

test('a body declared larger than maxBytes is refused from Content-Length', async () => {
  const err = await fetchError(server.url('/big-declared'), { ...allowed, maxBytes: 1000 });
  assert.equal(err.code, 'url_too_large');
  assert.match(err.message, /is 4\.9 KB, over the 1000 bytes limit/);
});

test('a body without Content-Length is cut off once it passes maxBytes', async () => {
  const err = await fetchError(server.url('/big-streamed'), { ...allowed, maxBytes: 64 * 1024 });
  assert.equal(err.code, 'url_too_large');
});

test('a gzip-encoded body is decoded, and the limit counts decoded bytes', async () => {
  assert.deepEqual((await guardedFetch(server.url('/gzip'), allowed)).bytes, PNG_BYTES);
  assert.equal((await fetchError(server.url('/gzip-bomb'), { ...allowed, maxBytes: 100_000 })).code, 'url_too_large');
});

test('a server that goes silent hits the idle timeout', async () => {
  const started = Date.now();
  const err = await fetchError(server.url('/stall'), { ...allowed, idleTimeoutMs: 200, timeoutMs: 5000 });
  assert.equal(err.code, 'url_timeout');
  assert.match(err.message, /sent nothing for 0\.2 s/);
  assert.ok(Date.now() - started < 2000);
});

test('a server that trickles forever hits the total timeout', async () => {
  const err = await fetchError(server.url('/drip'), { ...allowed, idleTimeoutMs: 1000, timeoutMs: 300 });
  assert.equal(err.code, 'url_timeout');
  assert.match(err.message, /did not finish downloading within 0\.3 s/);
});

test('the caller can cancel a fetch', async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const err = await fetchError(server.url('/stall'), { ...allowed, signal: controller.signal });
  assert.equal(err.code, 'url_aborted');
});

test('HTTP error statuses are errors that say what to do', async () => {
  const notFound = await fetchError(server.url('/missing'), allowed);
  assert.equal(notFound.code, 'url_status');
  assert.equal(notFound.status, 404);
  assert.match(notFound.message, /answered HTTP 404 Not Found; check that the URL is right/);
  assert.match((await fetchError(server.url('/private'), allowed)).message, /not publicly readable/);
  assert.equal((await fetchError(server.url('/broken'), allowed)).status, 500);
});

test('a web page where an image was expected is a content-type error', async () => {
  const err = await fetchError(server.url('/page.html'), { ...allowed, accept: IMAGE_CONTENT_TYPES });
  assert.equal(err.code, 'url_content_type');
  assert.match(err.message, /has content type text\/html.*web page/);
});

test('progress is reported as bytes arrive', async () => {
  const seen: [number, number | undefined][] = [];
  await guardedFetch(server.url('/face.png'), { ...allowed, onProgress: (n, total) => seen.push([n, total]) });
  assert.deepEqual(seen.at(-1), [PNG_BYTES.length, undefined]);
});

test('control characters in an invalid URL do not reach the message', async () => {
  const err = await fetchError('face\n.jpg', {});
  assert.equal(err.code, 'url_invalid');
  assert.doesNotMatch(err.message, /\n/);
});
