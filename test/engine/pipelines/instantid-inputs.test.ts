// prepareInstantIdInputs against the goldens' own inputs: draw_kps of the recorded keypoints is the
// recorded keypoint image, the face box is the recorded control mask, the canny map of the recorded
// photo is the recorded edge map (replicated to RGB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCase } from '../../../src/engine/golden/case.js';
import { ioImage } from '../../../src/engine/golden/kinds/instantid_pipeline.js';
import { prepareInstantIdInputs } from '../../../src/engine/pipelines/instantid-inputs.js';
import { controlMaskTensor } from '../../../src/engine/pipelines/instantid-prep.js';
import type { Box, Keypoints, RgbImage } from '../../../src/engine/face/types.js';
import type { ImageU8 } from '../../../src/engine/pipelines/instantid.js';
import { golden } from '../../helpers/paths.js';

function differing(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

test('kps image, face-box mask and canny map match the multi-ControlNet golden inputs', async () => {
  const c = loadCase(golden('instantid-pipeline-multicontrolnet'));
  try {
    const photo = ioImage(c, 'canny_photo_rgb_uint8');
    const kps = c.config.kps as unknown as Keypoints;
    const box = c.config.face_box_x1y1x2y2 as unknown as Box;
    const inputs = await prepareInstantIdInputs({
      embedding: c.io().readFloat32('image_embeds'),
      picture: { data: photo.data, width: photo.width, height: photo.height },
      face: { box, kps },
      controlMaps: ['canny'],
    });
    assert.equal(differing(inputs.kpsImage.data, ioImage(c, 'kps_image_uint8').data), 0);
    const edges = ioImage(c, 'canny_image_uint8').data;
    const rgbEdges = Uint8Array.from({ length: edges.length * 3 }, (_, i) => edges[Math.floor(i / 3)]!);
    assert.equal(differing(inputs.controlImages![0]!.data, rgbEdges), 0);
    const ours = controlMaskTensor(inputs.controlMask!, 32, 48).data;
    const theirs = ioImage(c, 'control_mask_uint8');
    assert.deepEqual(Array.from(ours), Array.from({ length: 32 * 48 }, (_, p) => theirs.data[p * 3]! / 255));
    assert.equal(inputs.width, 32);
    assert.equal(inputs.height, 48);
  } finally {
    c.close();
  }
});

test('the basic golden keypoint image; an override size scales keypoints and box; enhance off drops the mask', async () => {
  const c = loadCase(golden('instantid-pipeline'));
  try {
    const kps = c.config.kps as unknown as Keypoints;
    const picture = { data: new Uint8Array(64 * 64 * 3), width: 64, height: 64 };
    const base = { embedding: new Float32Array(24), picture, face: { box: [10, 12, 50, 52] as Box, kps } };
    const same = await prepareInstantIdInputs({ ...base, enhanceFaceRegion: false });
    assert.equal(differing(same.kpsImage.data, ioImage(c, 'kps_image_uint8').data), 0);
    assert.equal(same.controlMask, undefined);
    const big = await prepareInstantIdInputs({ ...base, width: 128, height: 128 });
    assert.deepEqual(big.controlMask, { box: [20, 24, 100, 104] });
    assert.equal(big.kpsImage.width, 128);
    assert.deepEqual(same.faceBox, [10, 12, 50, 52], 'the face box is kept even without the mask');
    await assert.rejects(prepareInstantIdInputs({ ...base, controlMaps: ['depth'] }), /no depth preprocessor was given/);
    await assert.rejects(prepareInstantIdInputs({ ...base, controlMaps: ['hed' as 'canny'] }), /no preprocessor for hed/);
  } finally {
    c.close();
  }
});

test('model-backed maps come from the same picture, in the request order, resized to the output size (PIL bicubic)', async () => {
  const picture = { data: new Uint8Array(16 * 8 * 3).map((_, i) => i % 251), width: 16, height: 8 };
  const seen: string[] = [];
  const grey = (v: number) => async (p: RgbImage): Promise<ImageU8> => {
    seen.push(`${p.width}x${p.height}`);
    return { data: new Uint8Array(p.width * p.height).fill(v), width: p.width, height: p.height, channels: 1 };
  };
  const inputs = await prepareInstantIdInputs(
    { embedding: new Float32Array(4), picture, face: { box: [1, 1, 8, 6], kps: [[2, 2], [6, 2], [4, 4], [3, 5], [5, 5]] }, width: 32, height: 16, controlMaps: ['depth', 'canny', 'openpose'] },
    { depth: grey(77), openpose: grey(200) },
  );
  assert.deepEqual(seen, ['16x8', '16x8'], 'each maker sees the picture itself');
  assert.deepEqual(inputs.controlImages!.map((m) => [m!.width, m!.height, m!.channels]), [[32, 16, 1], [32, 16, 3], [32, 16, 1]]);
  assert.ok(inputs.controlImages![0]!.data.every((v) => v === 77));
  assert.ok(inputs.controlImages![2]!.data.every((v) => v === 200));
  assert.deepEqual(inputs.faceBox, [2, 2, 16, 12]);
});
