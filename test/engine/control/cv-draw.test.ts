// OpenCV's raster primitives, held to pictures and vertex lists that cv2 itself produced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cvRound, ellipse2Poly, fillCircle, fillConvexPoly, line8, type Canvas } from '../../../src/engine/control/cv-draw.js';

function canvas(width: number, height: number, channels = 1): Canvas {
  return { width, height, channels, data: new Uint8Array(width * height * channels) };
}

/** Rows of '#' (set) and '.' (zero), reading channel 0. */
function picture(c: Canvas): string[] {
  const rows: string[] = [];
  for (let y = 0; y < c.height; y++) {
    let row = '';
    for (let x = 0; x < c.width; x++) row += c.data[(y * c.width + x) * c.channels] ? '#' : '.';
    rows.push(row);
  }
  return rows;
}

test('cvRound rounds halves to even, like cvtsd2si', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.6].map(cvRound), [0, 2, 2, 0, -2, 2, -3]);
});

test('ellipse2Poly samples every degree on the float32 sine table and drops repeated vertices', () => {
  const expected = [[15, 11], [16, 11], [16, 10], [17, 10], [18, 10], [19, 10], [20, 10], [20, 11], [21, 11], [22, 11], [22, 12], [23, 12], [23, 13], [24, 13], [24, 14], [25, 14], [25, 15], [25, 16], [25, 17], [25, 18], [25, 19], [24, 19], [24, 20], [23, 20], [22, 20], [21, 20], [20, 20], [20, 19], [19, 19], [18, 19], [18, 18], [17, 18], [17, 17], [16, 17], [16, 16], [15, 16], [15, 15], [15, 14], [15, 13], [15, 12], [15, 11]];
  assert.deepEqual(ellipse2Poly([20, 15], [6, 4], -140, 0, 360, 1), expected);
});

test('ellipse2Poly with a zero axis degenerates to a segment traced both ways', () => {
  const expected = [[5, 5], [5, 6], [4, 6], [4, 7], [4, 8], [3, 8], [4, 8], [4, 7], [4, 6], [5, 6], [5, 5], [5, 4], [6, 4], [6, 3], [6, 2], [7, 2], [6, 2], [6, 3], [6, 4], [5, 4], [5, 5]];
  assert.deepEqual(ellipse2Poly([5, 5], [0, 4], 30, 0, 360, 1), expected);
});

test('ellipse2Poly honours a coarser delta', () => {
  assert.deepEqual(ellipse2Poly([10, 10], [5, 3], 0, 0, 360, 45), [[15, 10], [14, 12], [10, 13], [6, 12], [5, 10], [6, 8], [10, 7], [14, 8], [15, 10]]);
});

test('line8 walks Bresenham from left to right', () => {
  const c = canvas(12, 8);
  line8(c, [10, 5], [1, 1], [1]);
  assert.deepEqual(picture(c), ['............', '.##.........', '...##.......', '.....##.....', '.......##...', '.........##.', '............', '............']);
});

test('fillConvexPoly fills a rotated ellipse exactly as cv2 does, outline included', () => {
  const c: Canvas = { width: 16, height: 16, channels: 3, data: new Float64Array(16 * 16 * 3) };
  fillConvexPoly(c, ellipse2Poly([8, 8], [6, 2], 30, 0, 360, 1), [1, 1, 1]);
  assert.deepEqual(picture(c).slice(4, 13), [
    '................', '...#####........', '...#######......', '...#########....', '....#########...',
    '.....#########..', '.......#######..', '.........#####..', '................',
  ]);
});

test('fillConvexPoly writes the exact colour on a float canvas and saturates on uint8', () => {
  const f: Canvas = { width: 4, height: 4, channels: 3, data: new Float64Array(48) };
  fillConvexPoly(f, [[0, 0], [3, 0], [3, 3], [0, 3]], [255, 0.5, 300]);
  assert.deepEqual([...f.data.subarray(0, 3)], [255, 0.5, 300]);
  const u = canvas(4, 4, 3);
  fillConvexPoly(u, [[0, 0], [3, 0], [3, 3], [0, 3]], [255, 0.5, 300]);
  assert.deepEqual([...u.data.subarray(0, 3)], [255, 0, 255]);
  assert.equal(picture(u).join(''), '#'.repeat(16));
});

test('fillCircle of radius 10 covers the 317 pixels cv2.circle fills', () => {
  const c = canvas(30, 30);
  fillCircle(c, [15, 15], 10, [255]);
  const perRow = picture(c).map((r) => [...r].filter((ch) => ch === '#').length);
  assert.deepEqual(perRow, [0, 0, 0, 0, 0, 1, 9, 13, 15, 17, 17, 19, 19, 19, 19, 21, 19, 19, 19, 19, 17, 17, 15, 13, 9, 1, 0, 0, 0, 0]);
});

test('fillCircle clips at the image border', () => {
  const c = canvas(12, 12);
  fillCircle(c, [1, 2], 4, [9]);
  assert.deepEqual(picture(c).slice(0, 7), ['#####.......', '#####.......', '######......', '#####.......', '#####.......', '####........', '.#..........']);
});
