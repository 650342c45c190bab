// InstantID's resize_img (instantid.md §4): sizes for portrait, landscape, tiny and huge photos with
// Python's rounding (reference values computed with the Python expression itself), and the pixels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outputSizeFor, pyRound, resizeImg, resizeImgPlan } from '../../../src/engine/control/resize.js';
import { pilResize } from '../../../src/engine/control/resample.js';

test('pyRound rounds exact halves to even, as Python 3 round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999999, 1023.5, 1024.5, -0.5, -1.5].map(pyRound), [0, 2, 2, 4, 2, 1024, 1024, 0, -2]);
});

// [width, height, max_side, final width, final height, intermediate width, intermediate height]
const TABLE: [number, number, number, number, number, number, number][] = [
  [512, 512, 1280, 1280, 1280, 1280, 1280],
  [512, 512, 1024, 1024, 1024, 1024, 1024],
  [1600, 1200, 1280, 1280, 960, 1280, 960],
  [1600, 1200, 1024, 1024, 768, 1024, 768],
  [1000, 1500, 1280, 832, 1280, 853, 1280],
  [1000, 1500, 1024, 640, 1024, 683, 1024],
  [640, 480, 1280, 1280, 960, 1280, 960],
  [100, 100, 1280, 1280, 1280, 1280, 1280],
  [1, 1, 1280, 1280, 1280, 1280, 1280],
  [2, 1, 1024, 1024, 512, 1024, 512],
  [5000, 3000, 1280, 1280, 768, 1280, 768],
  [5000, 3000, 1024, 1024, 576, 1024, 614],
  [6000, 4000, 1280, 1280, 832, 1280, 853],
  [1080, 1920, 1280, 704, 1280, 720, 1280],
  [1080, 1920, 1024, 576, 1024, 576, 1024],
  [333, 777, 1280, 512, 1280, 549, 1280],
  [1023, 1025, 1280, 1216, 1280, 1278, 1280],
  [1281, 719, 1280, 1280, 704, 1280, 719],
  [719, 1281, 1024, 512, 1024, 575, 1024],
];

test('resize_img sizes: long side to max_side, both sides floored to multiples of 64', () => {
  for (const [w, h, maxSide, W, H, w2, h2] of TABLE) {
    const plan = resizeImgPlan(w, h, { maxSide });
    assert.deepEqual([plan.width, plan.height, plan.scaled.width, plan.scaled.height], [W, H, w2, h2], `${w}×${h} max ${maxSide}`);
  }
});

test('defaults are the GitHub demo\'s: max 1280, min 1024, multiples of 64', () => {
  const plan = resizeImgPlan(1000, 1500);
  assert.deepEqual([plan.width, plan.height], [832, 1280]);
});

test('an aspect ratio too extreme for a 64-pixel side is a clear error (Python would crash in PIL)', () => {
  assert.throws(() => resizeImgPlan(300, 7), /aspect ratio/);
  assert.throws(() => resizeImgPlan(7, 300, { maxSide: 1024 }), /aspect ratio/);
});

/** A smooth RGB test image. */
function gradient(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      out[o] = (x * 255) / Math.max(1, width - 1);
      out[o + 1] = (y * 255) / Math.max(1, height - 1);
      out[o + 2] = ((x + y) * 7) % 256;
    }
  }
  return out;
}

test('resizeImg resizes twice with PIL bilinear: to the intermediate size, then to the snapped size', () => {
  const src = gradient(40, 30);
  const r = resizeImg(src, 40, 30, { maxSide: 100, minSide: 64, base: 16 });
  // 40×30 → short side 64 → 85×64 → long side 100 → 100×75 → floored to 96×64
  assert.deepEqual([r.width, r.height], [96, 64]);
  const twice = pilResize(pilResize(src, 40, 30, 3, 100, 75, 'bilinear'), 100, 75, 3, 96, 64, 'bilinear');
  assert.deepEqual(r.data, twice);
});

test('pad_to_max_side centres the image on a white square', () => {
  const r = resizeImg(gradient(30, 50), 30, 50, { maxSide: 128, minSide: 64, base: 16, padToMaxSide: true });
  assert.deepEqual([r.width, r.height], [128, 128]);
  // 30×50 → 64×107 → 77×128 → 64×128, centred at x = 32
  assert.deepEqual([...r.data.subarray(0, 3)], [255, 255, 255]);
  assert.deepEqual([...r.data.subarray(31 * 3, 32 * 3)], [255, 255, 255]);
  assert.notDeepEqual([...r.data.subarray(32 * 3, 33 * 3)], [255, 255, 255]);
  assert.deepEqual([...r.data.subarray(96 * 3, 97 * 3)], [255, 255, 255]);
});

test('an explicit size skips the computation', () => {
  const r = resizeImg(gradient(10, 10), 10, 10, { size: { width: 24, height: 8 } });
  assert.deepEqual([r.width, r.height, r.data.length], [24, 8, 24 * 8 * 3]);
});

test('outputSizeFor: resize_img\'s size, or overrides floored to multiples of 64', () => {
  assert.deepEqual(outputSizeFor(1000, 1500), { width: 832, height: 1280 });
  assert.deepEqual(outputSizeFor(1000, 1500, {}, { maxSide: 1024 }), { width: 640, height: 1024 });
  assert.deepEqual(outputSizeFor(1000, 1500, { width: 1000, height: 700 }), { width: 960, height: 640 });
  // one side given: the other keeps resize_img's aspect ratio (832×1280), then is snapped too
  assert.deepEqual(outputSizeFor(1000, 1500, { width: 1024 }), { width: 1024, height: 1536 });
  assert.deepEqual(outputSizeFor(1000, 1500, { height: 1024 }), { width: 640, height: 1024 });
  assert.deepEqual(outputSizeFor(1000, 1500, { width: 1016 }, { multiple: 8 }), { width: 1016, height: 1560 });
});

test('outputSizeFor rejects overrides outside the allowed range', () => {
  assert.throws(() => outputSizeFor(512, 512, { width: 32 }), /width 32/);
  assert.throws(() => outputSizeFor(512, 512, { height: 9000 }), /height 9000/);
  assert.throws(() => outputSizeFor(512, 512, { width: Number.NaN }), RangeError);
});
