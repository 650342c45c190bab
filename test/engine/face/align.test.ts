// ArcFace alignment: the Umeyama similarity fit, insightface's template, and cv2.warpAffine's bilinear
// warp, against the reference matrices and 112×112 crops in ../shared/assets/aligned.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ARCFACE_TEMPLATE_112, applyAffine, arcfaceMatrix, arcfaceTemplate, estimateSimilarity, invertAffine, normCrop, warpAffineBilinear,
} from '../../../src/engine/face/align.js';
import { ScrfdDetector } from '../../../src/engine/face/scrfd.js';
import type { Affine, Point, RgbImage } from '../../../src/engine/face/types.js';
import { DETECTOR, alignedRefs, decodeAligned, decodeRaw, maxAbs, pixelDiff } from './fixtures.js';

const detector = await ScrfdDetector.load(DETECTOR, { intraOpThreads: 1 });
after(() => detector.dispose());

const flat = (m: Affine): number[] => [...m[0], ...m[1]];
const residual = (m: Affine, src: readonly Point[], dst: readonly Point[]): number =>
  src.reduce((s, p, i) => {
    const [x, y] = applyAffine(m, p);
    return s + (x - dst[i]![0]) ** 2 + (y - dst[i]![1]) ** 2;
  }, 0);

test('the similarity fit recovers a known rotation, scale and translation', () => {
  const src: Point[] = [[10, 20], [40, 22], [25, 35], [12, 50], [38, 52]];
  const [s, angle, tx, ty] = [1.7, 0.3, 5, -3];
  const truth: Affine = [
    [s * Math.cos(angle), -s * Math.sin(angle), tx],
    [s * Math.sin(angle), s * Math.cos(angle), ty],
  ];
  const dst = src.map((p) => applyAffine(truth, p));
  assert.ok(maxAbs(flat(estimateSimilarity(src, dst)), flat(truth)) < 1e-12);
});

test('with noise, the fit is the least-squares optimum over similarities', () => {
  const src: Point[] = [[204.1, 100.6], [246.8, 103.6], [223.8, 129.2], [202.0, 139.7], [245.7, 142.3]];
  const dst = ARCFACE_TEMPLATE_112;
  const m = estimateSimilarity(src, dst);
  const best = residual(m, src, dst);
  // Any nudge of (a, b, tx, ty) that keeps it a similarity makes the residual worse.
  for (const [da, db, dx, dy] of [[1e-4, 0, 0, 0], [-1e-4, 0, 0, 0], [0, 1e-4, 0, 0], [0, -1e-4, 0, 0], [0, 0, 1e-3, 0], [0, 0, 0, -1e-3]]) {
    const [a, b] = [m[0][0] + da!, m[1][0] + db!];
    const nudged: Affine = [[a, -b, m[0][2] + dx!], [b, a, m[1][2] + dy!]];
    assert.ok(residual(nudged, src, dst) > best);
  }
});

test('a mirrored point set still gets a rotation, never a reflection', () => {
  const src: Point[] = [[0, 0], [10, 0], [0, 5]];
  const m = estimateSimilarity(src, src.map(([x, y]) => [-x, y] as const));
  assert.equal(m[0][0], m[1][1]);
  assert.equal(m[0][1], -m[1][0]);
});

test('the template is insightface\'s arcface_src (float32), and it maps onto itself', () => {
  assert.deepEqual(ARCFACE_TEMPLATE_112.flat(), [38.2946, 51.6963, 73.5318, 51.5014, 56.0252, 71.7366, 41.5493, 92.3655, 70.7299, 92.2041].map(Math.fround));
  assert.ok(maxAbs(flat(arcfaceMatrix(ARCFACE_TEMPLATE_112)), [1, 0, 0, 0, 1, 0]) < 1e-12);
  assert.deepEqual(arcfaceTemplate(224)[0], [ARCFACE_TEMPLATE_112[0][0] * 2, ARCFACE_TEMPLATE_112[0][1] * 2]);
  assert.equal(arcfaceTemplate(128)[0][0], ARCFACE_TEMPLATE_112[0][0] * (128 / 128) + 8);
  assert.throws(() => arcfaceTemplate(100), RangeError);
});

test('the matrix from detected keypoints matches aligned.json to 1e-4', async () => {
  const refs = alignedRefs();
  for (const name of ['astronaut.png', 'fullbody_standing.jpg']) {
    const [face] = await detector.detect(await decodeRaw(name));
    const err = maxAbs(flat(arcfaceMatrix(face!.kps)), flat(refs[name]!.M));
    assert.ok(err < 1e-4, `${name}: ${err}`);
  }
  // The reference run scaled this landscape photo's detections by 640/1080 where insightface uses
  // 426/720 (see scrfd.test.ts); with that undone the matrix agrees too.
  const [face] = await detector.detect(await decodeRaw('fullbody_y_pose.jpg'));
  const ratio = (426 / 720) / (640 / 1080);
  const kps = face!.kps.map(([x, y]) => [x * ratio, y * ratio] as const);
  const m = flat(arcfaceMatrix(kps as unknown as typeof face.kps));
  const ref = flat(refs['fullbody_y_pose.jpg']!.M);
  // Linear part to 1e-5; the translation to 2e-3, i.e. 0.001 px at this 2.16× zoom: the rescaling
  // cannot restore the last float32 bits of keypoints 530 px from the origin.
  assert.ok(maxAbs([m[0]!, m[1]!, m[3]!, m[4]!], [ref[0]!, ref[1]!, ref[3]!, ref[4]!]) < 1e-5);
  assert.ok(maxAbs([m[2]!, m[5]!], [ref[2]!, ref[5]!]) < 2e-3);
});

test('warping with the reference matrix reproduces the reference crops (OpenCV ≥ 4.11 kernel)', async () => {
  for (const [name, ref] of Object.entries(alignedRefs())) {
    const crop = warpAffineBilinear(await decodeRaw(name), ref.M, 112, 112);
    const { max, differing } = pixelDiff(crop.data, (await decodeAligned(ref.aligned)).data);
    // The residue is values within ±0.003 of x.5, flipped by M being printed to 6 decimals.
    assert.ok(max <= 1 && differing < 0.002 * crop.data.length, `${name}: max ${max}, ${differing} values differ`);
  }
});

test('the pre-4.11 fixed-point kernel stays within 2 grey levels of the reference crops', async () => {
  for (const [name, ref] of Object.entries(alignedRefs())) {
    const crop = warpAffineBilinear(await decodeRaw(name), ref.M, 112, 112, { algorithm: 'fixed-point' });
    const { max, differing } = pixelDiff(crop.data, (await decodeAligned(ref.aligned)).data);
    assert.ok(max <= 2 && differing < 0.15 * crop.data.length, `${name}: max ${max}, ${differing} differ`);
  }
});

test('detect → align end to end gives the reference crop of astronaut.png', async () => {
  const image = await decodeRaw('astronaut.png');
  const [face] = await detector.detect(image);
  const { crop, matrix } = normCrop(image, face!.kps);
  const ref = alignedRefs()['astronaut.png']!;
  assert.ok(maxAbs(flat(matrix), flat(ref.M)) < 1e-4);
  const { max } = pixelDiff(crop.data, (await decodeAligned(ref.aligned)).data);
  assert.ok(max <= 1, `max ${max}`);
});

test('identity and translation warps: pixels copied exactly, the uncovered border black', () => {
  const w = 7, h = 5;
  const img: RgbImage = { data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256), width: w, height: h };
  for (const algorithm of ['float32', 'fixed-point'] as const) {
    assert.deepEqual(warpAffineBilinear(img, [[1, 0, 0], [0, 1, 0]], w, h, { algorithm }).data, img.data);
    const shifted = warpAffineBilinear(img, [[1, 0, 2], [0, 1, 0]], w, h, { algorithm }); // content moves right by 2
    for (let y = 0; y < h; y++) {
      assert.deepEqual([...shifted.data.subarray(y * w * 3, y * w * 3 + 6)], [0, 0, 0, 0, 0, 0], algorithm);
      assert.deepEqual([...shifted.data.subarray((y * w + 2) * 3, (y + 1) * w * 3)], [...img.data.subarray(y * w * 3, (y * w + 5) * 3)]);
    }
  }
});

test('a half-pixel shift averages neighbours and half-weights the edge against black', () => {
  const img: RgbImage = { data: Uint8Array.from([100, 100, 100, 201, 201, 201]), width: 2, height: 1 };
  const out = warpAffineBilinear(img, [[1, 0, -0.5], [0, 1, 0]], 2, 1); // samples x = 0.5 and 1.5
  assert.deepEqual([...out.data], [150, 150, 150, 100, 100, 100]); // 150.5 rounds to even; (201 + 0) / 2
  assert.deepEqual(invertAffine([[2, 0, 4], [0, 2, 6]]), [[0.5, -0, -2], [-0, 0.5, -3]]);
});
