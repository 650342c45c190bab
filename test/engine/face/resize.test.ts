// cv2.resize INTER_LINEAR on 8-bit images: the fixed-point arithmetic SCRFD's input goes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resizeBilinearCv } from '../../../src/engine/face/resize.js';
import type { RgbImage } from '../../../src/engine/face/types.js';

const grey = (values: number[], width: number, height: number): RgbImage => ({
  data: Uint8Array.from(values.flatMap((v) => [v, v, v])), width, height,
});
const firstChannel = (img: RgbImage): number[] => [...img.data].filter((_, i) => i % 3 === 0);

test('the same size is a copy', () => {
  const img = grey([1, 2, 3, 4, 5, 6], 3, 2);
  assert.deepEqual(resizeBilinearCv(img, 3, 2).data, img.data);
});

test('upscaling: half-pixel centres, edges clamped, 11-bit weights', () => {
  // x = 0.25·(dx + 0.5) − 0.5 → −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
  assert.deepEqual(firstChannel(resizeBilinearCv(grey([0, 200], 2, 1), 4, 1)), [0, 50, 150, 200]);
  assert.deepEqual(firstChannel(resizeBilinearCv(grey([0, 200], 1, 2), 1, 4)), [0, 50, 150, 200]);
});

test('the vertical pass truncates as OpenCV does ((b·(h >> 4)) >> 16, +2 >> 2), not a float round', () => {
  // Rows [1, 15] → 5 rows; row 3 samples y = 0.9: 0.1·1 + 0.9·15 = 13.6 would round to 14. OpenCV's
  // weights 205 / 1843 and its truncating shifts give ((205·128) >> 16) + ((1843·1920) >> 16) = 0 + 53,
  // (53 + 2) >> 2 = 13.
  assert.equal(firstChannel(resizeBilinearCv(grey([1, 15], 1, 2), 1, 5))[3], 13);
});

test('exactly half the size is the 2×2 mean with +2 rounding (INTER_AREA\'s fast path)', () => {
  assert.deepEqual(firstChannel(resizeBilinearCv(grey([0, 1, 10, 20, 2, 2, 30, 40], 4, 2), 2, 1)), [(0 + 1 + 2 + 2 + 2) >> 2, (10 + 20 + 30 + 40 + 2) >> 2]);
});

test('stays within one grey level of exact bilinear on a random image', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 256;
  const w = 37, h = 23;
  const src: RgbImage = { data: Uint8Array.from({ length: w * h * 3 }, rand), width: w, height: h };
  for (const [dw, dh] of [[64, 40], [20, 13]] as const) {
    const out = resizeBilinearCv(src, dw, dh);
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const fx = Math.min(Math.max((x + 0.5) * (w / dw) - 0.5, 0), w - 1);
        const fy = Math.min(Math.max((y + 0.5) * (h / dh) - 0.5, 0), h - 1);
        const [x0, y0] = [Math.floor(fx), Math.floor(fy)];
        const [x1, y1] = [Math.min(x0 + 1, w - 1), Math.min(y0 + 1, h - 1)];
        const [ax, ay] = [fx - x0, fy - y0];
        for (let c = 0; c < 3; c++) {
          const p = (xx: number, yy: number) => src.data[(yy * w + xx) * 3 + c]!;
          const exact = (1 - ay) * ((1 - ax) * p(x0, y0) + ax * p(x1, y0)) + ay * ((1 - ax) * p(x0, y1) + ax * p(x1, y1));
          assert.ok(Math.abs(out.data[(y * dw + x) * 3 + c]! - exact) <= 1, `(${x}, ${y}) ${out.data[(y * dw + x) * 3 + c]} vs ${exact}`);
        }
      }
    }
  }
});
