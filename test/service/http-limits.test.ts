// F3: the attacks on the HTTP layer, each against a real server on a loopback port with small limits so
// the test is fast: half-sent requests are timed out, one address cannot hold more than its share of
// connections, and size and credentials are judged from the headers before any body byte is read.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestService, type TestService } from '../helpers/service.js';

let s: TestService;
const CAP = 6;
before(async () => {
  s = await startTestService({
    config: { headersTimeoutMs: 300, requestTimeoutMs: 600, idleTimeoutMs: 2000, maxConnectionsPerAddress: CAP, bodyLimit: 64 * 1024 },
  });
});
after(async () => {
  await s.close();
});

const port = () => Number(new URL(s.url).port);

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port(), '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Resolves with everything the server sent once it closes the connection (or after `ms`, with what came). */
function untilClosed(socket: Socket, ms: number): Promise<{ closed: boolean; text: string; afterMs: number }> {
  const t0 = Date.now();
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ closed: false, text, afterMs: Date.now() - t0 }), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, text, afterMs: Date.now() - t0 });
    });
    socket.on('error', () => undefined);
  });
}

test('a request whose headers never finish is closed after the header timeout', async () => {
  const socket = await open();
  socket.write('POST /v1/Task/Detail HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  const r = await untilClosed(socket, 3000);
  assert.ok(r.closed, 'the server kept a half-sent request open');
  assert.ok(r.afterMs < 2000, `closed only after ${r.afterMs} ms`);
});

test('a body that stops arriving is closed after the request timeout', async () => {
  const socket = await open();
  const headers = s.signedHeaders();
  socket.write(`POST /v1/Task/Detail HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n${
    Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n{"taskid":`);
  const r = await untilClosed(socket, 4000);
  assert.ok(r.closed, 'the server waited for the rest of the body');
  assert.ok(r.afterMs < 3000, `closed only after ${r.afterMs} ms`);
});

test(`one address holding ${CAP} connections gets its next one closed at once; freed slots work again`, async () => {
  const held = await Promise.all(Array.from({ length: CAP }, open));
  const extra = await open();
  const r = await untilClosed(extra, 1500);
  assert.ok(r.closed, `connection ${CAP + 1} was kept`);
  assert.equal(r.text, '', 'the over-cap connection was answered instead of closed');
  for (const h of held) h.destroy();
  await new Promise((r) => setTimeout(r, 50));
  const { status } = await s.post('/v1/Task/Detail', { taskid: '1' });
  assert.equal(status, 200);
});

test('a request without credentials is refused from its headers: 401 and closed, the 10 MB body never read', async () => {
  const socket = await open();
  socket.write('POST /v1/Run/test/scripted HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{"prompt":"');
  const r = await untilClosed(socket, 3000);
  assert.ok(r.closed);
  assert.match(r.text, /^HTTP\/1\.1 401/);
  assert.match(r.text, /x-api-key header is required/);
});

test('a signed request declaring a body over the limit is refused with 413 before the body is sent', async () => {
  const socket = await open();
  const headers = s.signedHeaders();
  socket.write(`POST /v1/Run/test/scripted HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 + 1}\r\n${
    Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
  const r = await untilClosed(socket, 3000);
  assert.match(r.text, /^HTTP\/1\.1 413/);
  assert.match(r.text, /Content-Length 65537 is over the 65536-byte limit/);
});
