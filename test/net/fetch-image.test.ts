// The bad-input rows of issue 2 item 11 that concern inputImageUrl, end to end through fetchImage.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { FetchError, ImageError, fetchImage } from '../../src/net/index.js';
import { LOOPBACK_ALLOW, bombPng, startServer, type TestServer } from './helpers.js';

let server: TestServer;
let face: Buffer;

before(async () => {
  face = await sharp({ create: { width: 12, height: 16, channels: 3, background: 'white' } }).jpeg().toBuffer();
  const bomb = bombPng();
  server = await startServer({
    '/face.jpg': (_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(face),
    '/s3-object': (_req, res) => res.writeHead(200, { 'content-type': 'binary/octet-stream' }).end(face),
    '/fake.jpg': (_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end('<html><body>Access denied</body></html>'),
    '/bomb.png': (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(bomb),
    '/gallery': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>'),
  });
});

after(() => server.close());

const opts = { allow: LOOPBACK_ALLOW, label: 'inputImageUrl' };

test('an image URL is fetched and checked', async () => {
  const r = await fetchImage(server.url('/face.jpg'), opts);
  assert.deepEqual(r.info, { format: 'jpeg', width: 12, height: 16 });
  assert.deepEqual(r.bytes, face);
});

test('object stores serving images as octet-stream are accepted on their magic bytes', async () => {
  assert.equal((await fetchImage(server.url('/s3-object'), opts)).info.format, 'jpeg');
});

test('a non-image file behind an image content type is refused by its bytes', async () => {
  await assert.rejects(fetchImage(server.url('/fake.jpg'), opts), (err: ImageError) => err.code === 'image_not_image' && /^inputImageUrl is not an image/.test(err.message));
});

test('a decompression bomb behind a URL is refused', async () => {
  await assert.rejects(fetchImage(server.url('/bomb.png'), opts), (err: ImageError) => err.code === 'image_too_large');
});

test('a web page is refused before its body is read', async () => {
  await assert.rejects(fetchImage(server.url('/gallery'), opts), (err: FetchError) => err.code === 'url_content_type');
});

test('a private address is refused', async () => {
  await assert.rejects(fetchImage('http://192.168.1.10/face.jpg', { label: 'inputImageUrl' }), (err: FetchError) => err.code === 'url_blocked_address');
});
