// draw_kps as InstantID draws it: the goldens' keypoint pictures exactly, and the geometry rules
// (limb colours dimmed to 153, dots in full colour, later strokes on top) on a larger picture from cv2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { drawKps, KPS_COLORS } from '../../../src/engine/face/draw-kps.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { golden } from '../../helpers/paths.js';

type Kps = [number, number][];

function goldenKps(name: string): { kps: Kps; width: number; height: number; expected: Uint8Array } {
  const dir = golden(name);
  const config = (JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { config: { kps: Kps } }).config;
  const io = SafetensorsFile.open(join(dir, 'io.safetensors'));
  try {
    const [height, width] = io.info('kps_image_uint8').shape as [number, number, number];
    return { kps: config.kps, width, height, expected: io.read('kps_image_uint8') as Uint8Array };
  } finally {
    io.close();
  }
}

function differingPixels(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i += 3) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
  return n;
}

for (const name of ['instantid-pipeline', 'instantid-pipeline-multicontrolnet']) {
  test(`drawKps reproduces the ${name} keypoint image exactly`, () => {
    const g = goldenKps(name);
    const got = drawKps(g.width, g.height, g.kps);
    assert.equal(got.length, g.expected.length);
    assert.equal(differingPixels(got, g.expected), 0);
  });
}

test('float64 keypoints give the same golden picture', () => {
  const g = goldenKps('instantid-pipeline');
  assert.equal(differingPixels(drawKps(g.width, g.height, g.kps, { precision: 'float64' }), g.expected), 0);
});

/** cv2's draw_kps on a 128×192 canvas with radius-3 dots, so the sticks show (float32 keypoints). */
const BIG_KPS: Kps = [[44, 112], [88, 110], [66, 132], [48, 156], [84, 158]];

function colourCounts(img: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < img.length; i += 3) {
    const key = `${img[i]},${img[i + 1]},${img[i + 2]}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

test('sticks are dimmed to 60 % (153) and dots keep the full colour', () => {
  const img = drawKps(128, 192, BIG_KPS, { radius: 3 });
  const counts = colourCounts(img);
  assert.deepEqual(Object.fromEntries([...counts].sort()), {
    '0,0,0': 23609,
    '0,0,255': 29,
    '0,153,0': 207,
    '0,255,0': 29,
    '153,0,0': 199,
    '153,0,153': 215,
    '153,153,0': 201,
    '255,0,0': 29,
    '255,0,255': 29,
    '255,255,0': 29,
  });
  const sha = createHash('sha256').update(img).digest('hex');
  assert.equal(sha, 'ffc3978a124b2665b84e5824f9aebae62cedab6cc52ccff9c8d4c22d3cccc102');
});

test('the nose has no stick colour of its own: every stick ends at it in its first point\'s colour', () => {
  const counts = colourCounts(drawKps(128, 192, BIG_KPS, { radius: 0 }));
  assert.equal(counts.get('0,0,153'), undefined);
  for (const i of [0, 1, 3, 4]) {
    const [r, g, b] = KPS_COLORS[i]!;
    assert.ok((counts.get(`${r * 0.6},${g * 0.6},${b * 0.6}`) ?? 0) > 100, `stick ${i} is drawn`);
  }
});

test('later dots are drawn over earlier ones', () => {
  const img = drawKps(40, 40, [[20, 20], [20, 20], [20, 20], [20, 20], [24, 20]]);
  assert.deepEqual([...img.subarray((20 * 40 + 20) * 3, (20 * 40 + 20) * 3 + 3)], [255, 0, 255]);
  assert.deepEqual([...img.subarray((20 * 40 + 12) * 3, (20 * 40 + 12) * 3 + 3)], [255, 255, 0]);
});

test('keypoints off the canvas are clipped, not an error', () => {
  const img = drawKps(32, 32, [[-20, -5], [50, 3], [16, 40], [-3, 33], [35, 35]]);
  assert.equal(img.length, 32 * 32 * 3);
  assert.ok(img.some((v) => v !== 0));
});

test('bad sizes and non-finite keypoints are rejected', () => {
  assert.throws(() => drawKps(0, 10, BIG_KPS), RangeError);
  assert.throws(() => drawKps(10, 10, [[NaN, 1], [1, 1], [1, 1], [1, 1], [1, 1]]), RangeError);
});
