// likeness preprocess depth|canny: the PNG written is the map the tool computes for that photo; the verb lists every kind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { run } from '../../src/cli/preprocess.js';
import { cannyControlImage } from '../../src/engine/control/canny.js';
import { DepthEstimator } from '../../src/engine/control/depth/index.js';
import { writeSmokeDepthAnything } from '../../src/engine/smoke-instantid.js';
import { decodeImageRGB } from '../../src/net/image.js';
import { asset } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'likeness-preprocess-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The PNG's pixels, and its channel count as stored (1 = grey). */
async function raw(path: string): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const { channels } = await sharp(readFileSync(path)).metadata();
  const img = sharp(readFileSync(path));
  const { data, info } = await (channels === 1 ? img.extractChannel(0) : img).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: channels ?? 0 };
}

test('canny --as-is writes the canny control image of the photo', async () => {
  const photo = asset('faces/fullbody_standing.jpg');
  const out = join(dir, 'canny.png');
  assert.equal(await run(['canny', photo, '-o', out, '--as-is']), 0);
  const img = await decodeImageRGB(new Uint8Array(readFileSync(photo)));
  const got = await raw(out);
  assert.deepEqual([got.width, got.height, got.channels], [img.width, img.height, 3]);
  assert.deepEqual(got.data, cannyControlImage(img.data, img.width, img.height, 100, 200));
});

test('depth writes the 8-bit depth map of the resized photo (resize_img, long side --max-side)', async () => {
  const model = join(dir, 'depth-anything');
  await writeSmokeDepthAnything(model, 3);
  const out = join(dir, 'depth.png');
  const cache = join(dir, 'cache');
  assert.equal(await run(['depth', asset('faces/astronaut.png'), '-o', out, '--model', model, '--max-side', '128', '--home', dir]), 0);
  const got = await raw(out);
  assert.deepEqual([got.width, got.height, got.channels], [128, 128, 1]);
  const est = await DepthEstimator.open(model, { cacheDir: cache });
  try {
    const img = await decodeImageRGB(new Uint8Array(readFileSync(asset('faces/astronaut.png'))));
    const { resizeImg } = await import('../../src/engine/control/resize.js');
    const map = await est.estimate(resizeImg(img.data, img.width, img.height, { maxSide: 128, minSide: 1024 }));
    assert.deepEqual(got.data, map.data);
  } finally {
    await est.dispose();
  }
});

test('a missing model or a bad call exits 2 with what to do', async () => {
  assert.equal(await run(['depth', asset('faces/astronaut.png'), '-o', join(dir, 'x.png'), '--home', join(dir, 'nowhere')]), 2);
  assert.equal(await run(['depth']), 2);
  assert.equal(await run(['pose', 'a.png']), 2);
});
