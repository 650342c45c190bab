// cv2.resize's INTER_AREA, INTER_LANCZOS4 and INTER_LINEAR as OpenCV computes them: the reference
// values below were produced by OpenCV 4.6.0 (the goldens' version) on the 6×5 ramp `ramp()`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cvResize } from '../../../src/engine/control/cv-resize.js';
import { resizeBilinearCv } from '../../../src/engine/face/resize.js';

/** (i · 37) mod 256 over a 6×5 gray image. */
function ramp(): { data: Uint8Array; width: number; height: number; channels: number } {
  return { data: Uint8Array.from({ length: 30 }, (_, i) => (i * 37) % 256), width: 6, height: 5, channels: 1 };
}

const rows = (data: ArrayLike<number>, width: number): number[][] => {
  const out: number[][] = [];
  for (let i = 0; i < data.length; i += width) out.push(Array.from(data).slice(i, i + width));
  return out;
};

test('INTER_AREA with a non-integer downscale weighs each source cell by its overlap (OpenCV 4.6.0)', () => {
  const out = cvResize(ramp(), 4, 3, 'area');
  assert.deepEqual(rows(out.data, 4), [[67, 48, 110, 159], [183, 96, 55, 105], [146, 195, 103, 50]]);
});

test('INTER_AREA that upscales one axis is OpenCV\'s area-phase bilinear (OpenCV 4.6.0)', () => {
  const out = cvResize(ramp(), 9, 4, 'area');
  assert.deepEqual(rows(out.data, 9), [
    [44, 37, 30, 67, 85, 104, 141, 160, 178], [208, 150, 92, 26, 45, 63, 100, 119, 137],
    [167, 186, 204, 139, 81, 22, 59, 78, 97], [127, 145, 164, 201, 193, 187, 19, 37, 56],
  ]);
});

test('INTER_LANCZOS4 on uint8 uses 11-bit taps, repeats edge pixels and saturates (OpenCV 4.6.0)', () => {
  const out = cvResize(ramp(), 9, 7, 'lanczos4');
  assert.deepEqual(rows(out.data, 9)[2], [255, 157, 33, 4, 43, 81, 99, 121, 143]);
  assert.deepEqual(rows(out.data, 9)[6], [114, 140, 158, 170, 248, 220, 41, 0, 58]);
});

test('integer INTER_AREA factors average the blocks', () => {
  const img = { data: Float32Array.from({ length: 16 }, (_, i) => i), width: 4, height: 4, channels: 1 };
  const out = cvResize(img, 2, 2, 'area');
  assert.deepEqual(Array.from(out.data), [(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]);
});

test('every filter keeps a constant float image constant, at any size', () => {
  const img = { data: new Float32Array(23 * 10).fill(0.375), width: 10, height: 23, channels: 1 };
  for (const mode of ['area', 'lanczos4', 'linear'] as const) {
    for (const [w, h] of [[80, 184], [7, 13], [10, 31]] as const) {
      const out = cvResize(img, w, h, mode);
      assert.equal(out.data.length, w * h);
      for (const v of out.data) assert.ok(Math.abs(v - 0.375) < 1e-6, `${mode} ${w}×${h}: ${v}`);
    }
  }
});

test('INTER_LINEAR on 3-channel uint8 is the face resize (OpenCV fixed point)', () => {
  const data = Uint8Array.from({ length: 13 * 9 * 3 }, (_, i) => (i * 53 + 7) % 256);
  for (const [w, h] of [[20, 11], [6, 4], [26, 18]] as const) {
    const ours = cvResize({ data, width: 13, height: 9, channels: 3 }, w, h, 'linear');
    assert.deepEqual(Array.from(ours.data), Array.from(resizeBilinearCv({ data, width: 13, height: 9 }, w, h).data), `${w}×${h}`);
  }
});

test('bad sizes are refused', () => {
  assert.throws(() => cvResize(ramp(), 0, 3, 'area'), /bad target size/);
  assert.throws(() => cvResize({ data: new Uint8Array(5), width: 3, height: 2, channels: 1 }, 2, 2, 'area'), /5 values/);
});
