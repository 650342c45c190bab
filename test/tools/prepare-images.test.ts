// The production preparation (tools/instantid/prepare-images.ts: decode → resize_img → face analysis →
// the engine's prepareInstantIdInputs) against the multi-ControlNet golden's own inputs: from the
// golden photo (PNG-encoded, as a user would upload it) and the golden face, the keypoint image,
// canny map and face-region mask are the golden ones. The analyzer is a stand-in returning the golden face.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { FaceAnalyzer, FaceChoice } from '../../src/engine/face/analysis.js';
import type { Box, Keypoints } from '../../src/engine/face/types.js';
import { loadCase } from '../../src/engine/golden/case.js';
import { ioImage } from '../../src/engine/golden/kinds/instantid_pipeline.js';
import { controlMaskTensor } from '../../src/engine/pipelines/instantid-prep.js';
import { prepareImages } from '../../src/tools/instantid/prepare-images.js';
import { golden } from '../helpers/paths.js';

function differing(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

test('the service path reproduces the golden keypoint image, canny map and face mask from the uploaded photo', async () => {
  const c = loadCase(golden('instantid-pipeline-multicontrolnet'));
  try {
    const photo = ioImage(c, 'canny_photo_rgb_uint8');
    const png = await sharp(Buffer.from(photo.data), { raw: { width: photo.width, height: photo.height, channels: 3 } }).png().toBuffer();
    const embedding = c.io().readFloat32('image_embeds');
    const box = c.config.face_box_x1y1x2y2 as unknown as Box;
    const kps = c.config.kps as unknown as Keypoints;
    const seen: string[] = [];
    const analyzer: Pick<FaceAnalyzer, 'choose'> = {
      choose: async (image) => {
        seen.push(`${image.width}x${image.height}`);
        assert.equal(differing(image.data, photo.data), 0, 'the analyzer sees the decoded photo itself');
        return { face: { box, kps, score: 0.9, embedding }, faces: [{ box, kps, score: 0.9 }], index: 0, detSize: 640, notes: [] } as unknown as FaceChoice;
      },
    };
    const file = { id: 'inputImage', url: '', bytes: new Uint8Array(png), contentType: 'image/png', path: '/dev/null' };
    // resize_img with min/max side = the photo's sides and multiples of 16 keeps the 32×48 photo as it is.
    const prepared = await prepareImages(analyzer, {
      face: { file, label: 'inputImage' }, pose: null, width: null, height: null,
      controlNets: [{ id: '454', preprocessor: 'canny' }], enhanceFaceRegion: true,
    }, { maxSide: 48, minSide: 32, base: 16, signal: new AbortController().signal });
    const { inputs } = prepared;
    assert.deepEqual(seen, ['32x48']);
    assert.deepEqual([inputs.width, inputs.height], [32, 48]);
    assert.equal(inputs.faceEmbedding, embedding);
    assert.equal(differing(inputs.kpsImage.data, ioImage(c, 'kps_image_uint8').data), 0, 'kps image');
    const edges = ioImage(c, 'canny_image_uint8').data;
    assert.equal(differing(inputs.controlImages![0]!.data, Uint8Array.from({ length: edges.length * 3 }, (_, i) => edges[Math.floor(i / 3)]!)), 0, 'canny map');
    const mask = controlMaskTensor(inputs.controlMask!, 32, 48).data;
    const theirs = ioImage(c, 'control_mask_uint8').data;
    assert.deepEqual(Array.from(mask), Array.from({ length: 32 * 48 }, (_, p) => theirs[p * 3]! / 255), 'face-region mask');
    assert.ok(prepared.notes.some((n) => /control map canny \(ControlNet 454\) computed from inputImage \(resized to 32×48\)$/.test(n)), prepared.notes.join('\n'));
  } finally {
    c.close();
  }
});
