// SCRFD detection as insightface 0.7.3 does it: letterbox, decode, NMS, and the real det_500m on the
// asset photos against the reference numbers in ../shared/assets/README.md.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EngineError } from '../../../src/engine/errors.js';
import { ScrfdDetector, decode, groupOutputs, iouPlusOne, letterbox, nms } from '../../../src/engine/face/scrfd.js';
import type { HostTensor } from '../../../src/engine/onnx/dtype.js';
import type { Box } from '../../../src/engine/face/types.js';
import { decodeImageRGB } from '../../../src/net/image.js';
import { asset } from '../../helpers/paths.js';
import { DETECTOR, alignedRefs, decodeRaw, maxAbs } from './fixtures.js';

const detector = await ScrfdDetector.load(DETECTOR, { intraOpThreads: 1 });
after(() => detector.dispose());

const photo = async (name: string) => decodeImageRGB(readFileSync(asset(`faces/${name}`)));

test('letterbox keeps the aspect ratio with int() truncation and pads bottom/right with zeros', () => {
  const grey = (w: number, h: number) => ({ data: new Uint8Array(w * h * 3).fill(255), width: w, height: h });
  const land = letterbox(grey(1080, 720), 640);
  assert.equal(land.scale, 426 / 720); // int(640 · 720/1080) = 426 rows; scale from the height, as insightface
  const port = letterbox(grey(315, 611), 640);
  assert.equal(port.scale, 640 / 611); // int(640 / (611/315)) = 329 columns
  const t = port.tensor.data;
  const plane = 640 * 640;
  assert.deepEqual(port.tensor.dims, [1, 3, 640, 640]);
  assert.equal(t[0], (255 - 127.5) / 128);
  assert.equal(t[328], (255 - 127.5) / 128);
  assert.equal(t[329], -127.5 / 128); // first padded column
  assert.equal(t[2 * plane + 639 * 640 + 100], (255 - 127.5) / 128);
  assert.equal(land.tensor.data[426 * 640], -127.5 / 128); // first padded row
});

test('letterbox feeds RGB planes in that order', () => {
  const px = { data: Uint8Array.from([10, 20, 30, 10, 20, 30]), width: 2, height: 1 };
  const { tensor } = letterbox(px, 32);
  const plane = 32 * 32;
  assert.deepEqual([tensor.data[0], tensor.data[plane], tensor.data[2 * plane]], [10, 20, 30].map((v) => (v - 127.5) / 128));
});

test('outputs are grouped by role and row count, whatever their names, order or batch dimension', () => {
  const size = 64; // strides 8, 16, 32 → 64, 16, 4 cells × 2 anchors
  const t = (rows: number, cols: number, batch: boolean): HostTensor => ({
    dtype: 'float32', dims: batch ? [1, rows, cols] : [rows, cols], data: new Float32Array(rows * cols).fill(rows + cols / 100),
  });
  const outputs: Record<string, HostTensor> = {
    kps_32: t(8, 10, true), score_8: t(128, 1, true), bbox_16: t(32, 4, true), score_32: t(8, 1, true),
    kps_8: t(128, 10, true), bbox_8: t(128, 4, true), score_16: t(32, 1, true), kps_16: t(32, 10, true), bbox_32: t(8, 4, true),
  };
  const { levels, anchors } = groupOutputs(outputs, size);
  assert.equal(anchors, 2);
  assert.deepEqual(levels.map((l) => [l.stride, l.scores.length, l.boxes[0], l.kps[0]]), [
    [8, 128, 128.04, 128.1], [16, 32, 32.04, 32.1], [32, 8, 8.04, 8.1],
  ].map(([s, n, b, k]) => [s, n, Math.fround(b!), Math.fround(k!)]));
  const { score_8: _dropped, ...noKps } = outputs;
  assert.throws(() => groupOutputs(noKps, size), (e) => e instanceof EngineError && e.code === 'detector_unsupported');
});

test('decode: centre (x·s, y·s) without offset, anchors repeated per cell, distances × stride, ÷ scale', () => {
  const size = 32; // one level of stride 8: 4×4 cells × 2 anchors = 32 rows
  const scores = new Float32Array(32);
  const boxes = new Float32Array(32 * 4);
  const kps = new Float32Array(32 * 10);
  const row = (2 * 4 + 3) * 2 + 1; // cell x=3, y=2, second anchor
  scores[row] = 0.75;
  scores[row - 1] = 0.49; // below the threshold
  boxes.set([1, 2, 3, 4], row * 4);
  kps.set([0.5, -0.5, 1, 1, 0, 0, -1, 2, 2, 2], row * 10);
  const [d, ...rest] = decode([{ stride: 8, scores, boxes, kps }], 2, size, 0.5, 0.5);
  assert.equal(rest.length, 0);
  // centre (24, 16); box (24−8, 16−16, 24+24, 16+32) / 0.5
  assert.deepEqual(d!.box, [32, 0, 96, 96]);
  assert.deepEqual(d!.kps, [[56, 24], [64, 48], [48, 32], [32, 64], [80, 64]]);
  assert.equal(d!.score, 0.75);
});

test('IoU uses insightface\'s +1 pixel convention', () => {
  // Plain IoU of these is 2/6 (kept at 0.4); with +1 widths it is 6/12 (suppressed).
  assert.equal(iouPlusOne([0, 0, 2, 2], [1, 0, 3, 2]), 0.5);
  assert.equal(iouPlusOne([0, 0, 9, 9], [0, 0, 9, 24]), 0.4);
  assert.equal(iouPlusOne([0, 0, 1, 1], [5, 5, 6, 6]), 0);
});

test('NMS sorts by score and drops boxes overlapping a kept one by more than the threshold', () => {
  const d = (box: Box, score: number) => ({ box, score });
  const kept = nms([
    d([101, 100, 103, 102], 0.6), // IoU+1 0.5 with the 0.65 box (plain IoU 1/3): dropped
    d([100, 100, 102, 102], 0.65),
    d([0, 0, 9, 24], 0.7), // IoU+1 exactly 0.4 with [0,0,9,9]: kept (≤)
    d([0, 0, 9, 9], 0.9),
    d([50, 50, 60, 60], 0.55),
    d([51, 51, 61, 61], 0.8), // beats the 0.55 box, which it overlaps
  ], 0.4);
  assert.deepEqual(kept.map((k) => k.score), [0.9, 0.8, 0.7, 0.65]);
});

test('astronaut.png: one face with the reference score, box and keypoints', async () => {
  const faces = await detector.detect(await photo('astronaut.png'));
  assert.equal(faces.length, 1);
  const [f] = faces;
  assert.ok(Math.abs(f!.score - 0.8) < 0.02);
  assert.ok(maxAbs(f!.box, [180.1, 60.2, 271.6, 179.7]) < 3);
  assert.ok(maxAbs(f!.kps.flat(), [204.1, 100.6, 246.8, 103.6, 223.8, 129.2, 202.0, 139.7, 245.7, 142.3]) < 3);
});

test('rocket_noface.jpg: no face', async () => {
  assert.deepEqual(await detector.detect(await photo('rocket_noface.jpg')), []);
});

test('the full-body photos: one small face each, where the README says', async () => {
  for (const [name, score, box] of [
    ['fullbody_y_pose.jpg', 0.901, [515.8, 125.6, 554.6, 172.9]],
    ['fullbody_standing.jpg', 0.897, [124.4, 40.5, 171.4, 102.4]],
  ] as const) {
    const faces = await detector.detect(await photo(name));
    assert.equal(faces.length, 1, name);
    assert.ok(Math.abs(faces[0]!.score - score) < 0.02, `${name} score ${faces[0]!.score}`);
    assert.ok(maxAbs(faces[0]!.box, box) < 3, `${name} box ${faces[0]!.box.join(', ')}`);
  }
});

test('solvay_1927 (grey, 29 small faces): all found, scores 0.71–0.84, highest first', async () => {
  const faces = await detector.detect(await photo('solvay_1927_1024w.jpg'));
  assert.equal(faces.length, 29);
  const scores = faces.map((f) => f.score);
  assert.ok(Math.min(...scores) > 0.69 && Math.max(...scores) < 0.86, `scores ${Math.min(...scores)}…${Math.max(...scores)}`);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  for (const f of faces) {
    for (const [x, y] of f.kps) assert.ok(x > f.box[0] && x < f.box[2] && y > f.box[1] && y < f.box[3], 'keypoints inside the box');
  }
});

test('matches the reference run to rounding when pixels are decoded as cv2 decodes them', async () => {
  const refs = alignedRefs();
  for (const name of ['astronaut.png', 'fullbody_standing.jpg']) {
    const [f] = await detector.detect(await decodeRaw(name));
    const ref = refs[name]!;
    assert.ok(Math.abs(f!.score - ref.score) < 1e-3, `${name} score`);
    assert.ok(maxAbs(f!.box, ref.box) < 0.01, `${name} box ${f!.box.join(', ')}`);
    assert.ok(maxAbs(f!.kps.flat(), ref.kps.flat()) < 0.002, `${name} kps`);
  }
});

test('fullbody_y_pose: the reference scaled back by 640/1080, insightface by int(426.7)/720', async () => {
  // insightface divides by det_scale = new_height / height = 426/720 even for landscape photos; the
  // reference run used 640/1080. Same network output, so the results differ by exactly that ratio.
  const [f] = await detector.detect(await decodeRaw('fullbody_y_pose.jpg'));
  const ref = alignedRefs()['fullbody_y_pose.jpg']!;
  const ratio = (426 / 720) / (640 / 1080);
  assert.ok(Math.abs(f!.score - ref.score) < 1e-3);
  assert.ok(maxAbs(f!.box.map((v) => v * ratio), ref.box) < 0.01, `box ${f!.box.join(', ')}`);
  assert.ok(maxAbs(f!.kps.flat().map((v) => v * ratio), ref.kps.flat()) < 0.002);
});

test('a missing model file is model_missing, naming the file, the pack and its licence', async () => {
  await assert.rejects(ScrfdDetector.load('/nonexistent/models/antelopev2/scrfd_10g_bnkps.onnx'), (e) => {
    assert.ok(e instanceof EngineError);
    assert.equal(e.code, 'model_missing');
    assert.match(e.message, /\/nonexistent\/models\/antelopev2\/scrfd_10g_bnkps\.onnx/);
    assert.match(e.message, /antelopev2/);
    assert.match(e.message, /non-commercial/);
    return true;
  });
});
