import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp, { type Sharp } from 'sharp';
import { ImageError, checkImage, decodeImageRGB, sniffImageFormat } from '../../src/net/image.js';
import { bombPng } from './helpers.js';

function solid(width: number, height: number, channels: 3 | 4 = 3): Sharp {
  return sharp({ create: { width, height, channels, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } });
}

async function imageError(work: Promise<unknown>): Promise<ImageError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof ImageError, `expected an ImageError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the image to be refused');
}

test('PNG, JPEG, WebP and GIF are recognised with their dimensions', async () => {
  const cases = [
    ['png', await solid(7, 5).png().toBuffer()],
    ['jpeg', await solid(7, 5).jpeg().toBuffer()],
    ['webp', await solid(7, 5).webp().toBuffer()],
    ['gif', await solid(7, 5).gif().toBuffer()],
  ] as const;
  for (const [format, bytes] of cases) assert.deepEqual(await checkImage(bytes), { format, width: 7, height: 5 }, format);
});

test('an HTML page is refused as not an image, saying what it is', async () => {
  const err = await imageError(checkImage(Buffer.from('<!DOCTYPE html><html><body>Sign in</body></html>'), { label: 'inputImageUrl' }));
  assert.equal(err.code, 'image_not_image');
  assert.match(err.message, /^inputImageUrl is not an image: it looks like an HTML page/);
});

test('text, zip and PDF files are refused as not images', async () => {
  const samples = { 'plain text': 'hello there', 'a zip archive': 'PK\x03\x04rest', 'a PDF document': '%PDF-1.7' };
  for (const [what, content] of Object.entries(samples)) {
    const err = await imageError(checkImage(Buffer.from(content, 'latin1')));
    assert.equal(err.code, 'image_not_image');
    assert.ok(err.message.includes(what), err.message);
  }
});

test('SVG is refused: only raster photos are decoded', async () => {
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
  assert.equal((await imageError(checkImage(svg))).code, 'image_not_image');
});

test('HEIC is refused as unsupported, with advice', async () => {
  const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1')]);
  assert.equal(sniffImageFormat(heic), 'heic');
  const err = await imageError(checkImage(heic));
  assert.equal(err.code, 'image_unsupported');
  assert.match(err.message, /convert it to JPEG or PNG/);
});

test('an empty file is refused', async () => {
  assert.equal((await imageError(checkImage(Buffer.alloc(0)))).code, 'image_empty');
});

test('a file over maxBytes is refused before it is parsed', async () => {
  const png = await solid(64, 64).png().toBuffer();
  assert.equal((await imageError(checkImage(png, { maxBytes: 10 }))).code, 'image_too_large');
});

test('a decompression bomb (tiny PNG declaring 30000×30000) is refused without decoding', async () => {
  const bomb = bombPng();
  assert.ok(bomb.length < 2000, `the bomb is ${bomb.length} bytes`);
  const started = Date.now();
  const err = await imageError(decodeImageRGB(bomb, { label: 'inputImage' }));
  assert.equal(err.code, 'image_too_large');
  assert.match(err.message, /inputImage is 30000×30000 pixels \(900 MP\), over the 50 MP limit/);
  assert.ok(Date.now() - started < 2000);
});

test('a large but highly compressible image is refused by the pixel limit', async () => {
  const big = await solid(2000, 1500).png().toBuffer();
  assert.ok(big.length < 100_000);
  const err = await imageError(decodeImageRGB(big, { maxPixels: 1_000_000 }));
  assert.equal(err.code, 'image_too_large');
});

test('a truncated JPEG is corrupt', async () => {
  const jpeg = await solid(64, 64).jpeg().toBuffer();
  const err = await imageError(decodeImageRGB(jpeg.subarray(0, Math.floor(jpeg.length / 2))));
  assert.equal(err.code, 'image_corrupt');
  assert.match(err.message, /looks like JPEG but could not be read/);
});

test('an EXIF-rotated JPEG is decoded upright', async () => {
  // Stored 40×20, red left half, blue right; orientation 6 means "rotate 90° clockwise to view",
  // so the upright image is 20×40 with red on top and blue below.
  const blue = await sharp({ create: { width: 20, height: 20, channels: 3, background: 'blue' } }).png().toBuffer();
  const jpeg = await sharp({ create: { width: 40, height: 20, channels: 3, background: 'red' } })
    .composite([{ input: blue, left: 20, top: 0 }])
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.deepEqual(await checkImage(jpeg), { format: 'jpeg', width: 20, height: 40 });
  const { data, width, height } = await decodeImageRGB(jpeg);
  assert.deepEqual([width, height, data.length], [20, 40, 20 * 40 * 3]);
  const pixel = (x: number, y: number): number[] => Array.from(data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
  const [r0, , b0] = pixel(10, 5);
  const [r1, , b1] = pixel(10, 35);
  assert.ok(r0 > 200 && b0 < 50, `top is red: ${pixel(10, 5)}`);
  assert.ok(b1 > 200 && r1 < 50, `bottom is blue: ${pixel(10, 35)}`);
});

test('alpha is dropped and grey images are expanded: always 3 channels', async () => {
  const rgba = await decodeImageRGB(await solid(4, 3, 4).png().toBuffer());
  assert.equal(rgba.data.length, 4 * 3 * 3);
  assert.deepEqual(Array.from(rgba.data.subarray(0, 3)), [10, 200, 30]);
  const grey = await decodeImageRGB(await solid(4, 3).greyscale().png().toBuffer());
  assert.equal(grey.data.length, 4 * 3 * 3);
  assert.equal(grey.data[0], grey.data[1]);
});
