// OpenposeDetector as controlnet_aux's __call__: HWC3, the two resize_image sizes, the drawing of
// limbs and joints, and the errors a user sees. The network is the smoke set's tiny random model, so
// these tests check the plumbing and the drawing, not what a real model detects.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { POSE_COLORS, drawBodyPose } from '../../../src/engine/control/openpose/draw.js';
import { OPENPOSE_DOWNLOAD, OpenposeDetector, hwc3, resizeImagePlan } from '../../../src/engine/control/openpose/index.js';
import { writeSmokeBodyPoseModel } from '../../../src/engine/control/openpose/smoke.js';
import type { Candidate, PersonRow } from '../../../src/engine/control/openpose/body.js';
import { decodeImageRGB } from '../../../src/net/image.js';
import { asset } from '../../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'likeness-openpose-detector-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cacheDir = join(tmpdir(), 'likeness-openpose-test-onnx');

async function smokeDetector(): Promise<OpenposeDetector> {
  const path = await writeSmokeBodyPoseModel(join(dir, 'body_pose_model.pth'));
  return OpenposeDetector.open(path, { cacheDir, session: { intraOpThreads: 1 } });
}

const pixel = (img: { data: Uint8Array; width: number }, x: number, y: number): number[] =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

/** One person: candidate i is part i at the given position; all 18 parts present. */
function person(points: [number, number][]): { candidate: Candidate[]; subset: PersonRow[] } {
  const candidate = points.map(([x, y], i) => [x, y, 1, i] as Candidate);
  return { candidate, subset: [[...points.map((_, i) => i), 18, 18]] };
}

test('resize_image: short side to the resolution, both sides rounded half-to-even to multiples of 64', () => {
  // 52 × 100 at 160: k = 3.08 → 160 × 307.7 → 2.5 → 2 (even) and 4.8 → 5 sixty-fours.
  assert.deepEqual(resizeImagePlan(52, 100, 160), { width: 128, height: 320, interpolation: 'lanczos4' });
  assert.deepEqual(resizeImagePlan(1024, 768, 512), { width: 704, height: 512, interpolation: 'area' });
  assert.deepEqual(resizeImagePlan(512, 512, 512), { width: 512, height: 512, interpolation: 'area' });
  assert.throws(() => resizeImagePlan(2000, 20, 16), /aspect ratio is too extreme/);
});

test('HWC3: gray is repeated, RGBA is composited on white in float32 and truncated', () => {
  assert.deepEqual(Array.from(hwc3({ data: Uint8Array.of(7, 200), width: 2, height: 1, channels: 1 }).data), [7, 7, 7, 200, 200, 200]);
  const rgba = hwc3({ data: Uint8Array.of(100, 50, 0, 128, 9, 9, 9, 255, 9, 9, 9, 0), width: 3, height: 1, channels: 4 });
  // 100·α + 255·(1 − α) with α = 128/255 = 177.19…; for a black channel 255·(1 − α) is 126.99999 in
  // float32 (numpy gives the same), so 126. Opaque keeps the colour; transparent is white.
  assert.deepEqual(Array.from(rgba.data), [177, 152, 126, 9, 9, 9, 255, 255, 255]);
  assert.throws(() => hwc3({ data: new Uint8Array(5), width: 1, height: 1, channels: 5 }), /1, 3 or 4 channels/);
});

test('limbs are 60 % ellipses, joints full-colour disks of radius 4, the shoulder–ear limbs are not drawn', () => {
  const pts: [number, number][] = [
    [64, 20], [64, 40], [40, 40], [30, 70], [25, 100], [88, 40], [98, 70], [103, 100],
    [50, 100], [50, 130], [50, 160], [78, 100], [78, 130], [78, 160], [58, 14], [70, 14], [52, 18], [76, 18],
  ];
  const { candidate, subset } = person(pts);
  const d = drawBodyPose(128, 176, candidate, subset);
  assert.equal(d.polygons.length, 17);
  pts.forEach(([x, y], j) => assert.deepEqual(pixel(d, x, y), [...POSE_COLORS[j]!], `joint ${j}`));
  // Neck–right hip (limb 6, colour 6 at 60 %) midway; no joint is near.
  assert.deepEqual(pixel(d, 57, 70), POSE_COLORS[6]!.map((c) => Math.trunc(c * 0.6)));
  // The r_shoulder–r_ear line (limb 17) would cross (46, 29): nothing is there.
  assert.deepEqual(pixel(d, 46, 29), [0, 0, 0]);
});

test('a missing part drops its joint and both its limbs', () => {
  const pts: [number, number][] = Array.from({ length: 18 }, (_, i) => [10 + 6 * (i % 6), 10 + 20 * Math.floor(i / 6)]);
  const { candidate, subset } = person(pts);
  const full = drawBodyPose(64, 64, candidate, subset).polygons.length;
  subset[0]![1] = -1; // no neck: limbs 0, 1, 6, 9, 12 go
  assert.equal(drawBodyPose(64, 64, candidate, subset).polygons.length, full - 5);
});

test('keypoints make the reference\'s float64 round trip: at width 448, x = 61 is drawn at 60', () => {
  const { candidate, subset } = person(Array.from({ length: 18 }, () => [61, 30] as [number, number]));
  const d = drawBodyPose(448, 64, candidate, subset);
  assert.notDeepEqual(pixel(d, 56, 30), [0, 0, 0], 'disk centred at 60 reaches x = 56');
  assert.deepEqual(pixel(d, 65, 30), [0, 0, 0], 'and not x = 65');
});

test('detect: the pose is drawn at the detect size and resized to the image resolution\'s size', async () => {
  const detector = await smokeDetector();
  try {
    const photo = await decodeImageRGB(await readFile(asset('faces/fullbody_standing.jpg')), { label: 'fullbody_standing.jpg' });
    const small = await detector.detect(photo, { detectResolution: 160, imageResolution: 72 });
    // 315 × 611 at 160 → 128 × 320 (detect); 72 from that → 64 × 192.
    assert.deepEqual([small.width, small.height], [64, 192]);
    assert.equal(small.data.length, 64 * 192 * 3);
    // controlnet_aux's defaults: detect and image resolution 512 (a 96 × 72 image → 704 × 512 both times).
    const defaults = await detector.detect({ data: new Uint8Array(96 * 72 * 3).fill(90), width: 96, height: 72 });
    assert.deepEqual([defaults.width, defaults.height], [704, 512]);
  } finally {
    await detector.dispose();
  }
});

test('detect: an RGBA image gives the map of its composite on white', async () => {
  const detector = await smokeDetector();
  try {
    const w = 64;
    const h = 96;
    const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? (i * 5) % 256 : (i * 31) % 256));
    const a = await detector.detect({ data: rgba, width: w, height: h, channels: 4 }, { detectResolution: 128, imageResolution: 64 });
    const b = await detector.detect(hwc3({ data: rgba, width: w, height: h, channels: 4 }), { detectResolution: 128, imageResolution: 64 });
    // 64 × 96 at 128 → 128 × 192; at 64 that is 64 × 96 → 1.5 sixty-fours, rounded to 2 (even): 64 × 128.
    assert.deepEqual([a.width, a.height], [64, 128]);
    assert.deepEqual(a.data, b.data);
  } finally {
    await detector.dispose();
  }
});

test('a missing body model is an error that says what to download and where to put it', async () => {
  const path = join(dir, 'nowhere', 'body_pose_model.pth');
  await assert.rejects(OpenposeDetector.open(path), (e: unknown) =>
    e instanceof EngineError && e.code === 'missing_model' && e.message.includes(path) && e.message.includes(OPENPOSE_DOWNLOAD) && /licen/i.test(e.message));
});
