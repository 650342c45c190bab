// The ArcFace runner, on a tiny position-sensitive graph built here (no real recognition model is in
// ../shared/assets: glintr100 / w600k were left out for size). It checks what the runner owns:
// RGB planes, (pixel − 127.5) / 127.5, NCHW layout, alignment before embedding, the raw (not
// normalised) output, and the errors. It cannot check a real network's numbers.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArcFaceRecognizer } from '../../../src/engine/face/arcface.js';
import { normCrop } from '../../../src/engine/face/align.js';
import { EngineError } from '../../../src/engine/errors.js';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { writeModel } from '../../../src/engine/onnx/serialize.js';
import type { RgbImage } from '../../../src/engine/face/types.js';
import { f32, randn } from '../../helpers/reference-ops.js';
import { DETECTOR, alignedRefs, decodeRaw } from './fixtures.js';

const S = 112;
const PLANE = S * S;
const K = 4;
const D = 512;
const spatial = f32(randn([PLANE, K], 11, 1 / S)); // [12544, 4]: every pixel position weighs differently
const mix = f32(randn([3 * K, D], 12)); // [12, 512]

/** x [N, 3, 112, 112] → [N, 3, 12544] @ spatial → [N, 12] @ mix → embedding [N, 512]. */
async function writeTinyArcFace(dir: string): Promise<string> {
  const g = new GraphBuilder({ name: 'tiny-arcface' });
  const x = g.input('input.1', ['N', 3, S, S]);
  const h = g.matmul(g.reshape(x, [0, 3, PLANE]), g.param('spatial', [PLANE, K], spatial));
  g.output(g.matmul(g.reshape(h, [0, 3 * K]), g.param('mix', [3 * K, D], mix)), '683');
  const path = join(dir, 'tiny-arcface.onnx');
  await writeModel(g.build(), path);
  return path;
}

/** The same computation in float64, from the crop's RGB bytes. */
function expected(crop: RgbImage, mean = 127.5, std = 127.5): Float64Array {
  const h = new Float64Array(3 * K);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < PLANE; i++) {
      const v = (crop.data[i * 3 + c]! - mean) / std;
      for (let k = 0; k < K; k++) h[c * K + k]! += v * spatial[i * K + k]!;
    }
  }
  const e = new Float64Array(D);
  for (let j = 0; j < D; j++) for (let r = 0; r < 3 * K; r++) e[j]! += h[r]! * mix[r * D + j]!;
  return e;
}

function assertClose(actual: Float32Array, want: Float64Array): void {
  assert.equal(actual.length, want.length);
  const scale = Math.max(...want.map(Math.abs));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(actual[i]! - want[i]!) <= 1e-4 * scale, `[${i}] ${actual[i]} vs ${want[i]}`);
}

const dir = mkdtempSync(join(tmpdir(), 'likeness-arcface-'));
const model = await writeTinyArcFace(dir);
const recognizer = await ArcFaceRecognizer.load(model, { intraOpThreads: 1 });
after(async () => {
  await recognizer.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('embeds an aligned crop as RGB planes scaled by (x − 127.5) / 127.5, output left raw', async () => {
  const crop: RgbImage = { data: Uint8Array.from({ length: PLANE * 3 }, (_, i) => (i * 7919) % 256), width: S, height: S };
  const embedding = await recognizer.embed(crop);
  assertClose(embedding, expected(crop));
  const norm = Math.hypot(...embedding);
  assert.ok(Math.abs(norm - 1) > 0.1, `norm ${norm}: the embedding must not be L2-normalised`);
});

test('swapping R and B changes the embedding (channel order matters and is RGB)', async () => {
  const crop: RgbImage = { data: new Uint8Array(PLANE * 3), width: S, height: S };
  for (let i = 0; i < PLANE; i++) crop.data[i * 3] = 255; // pure red
  const red = await recognizer.embed(crop);
  assertClose(red, expected(crop));
  const blue: RgbImage = { ...crop, data: crop.data.map((_, i) => (i % 3 === 2 ? 255 : 0)) };
  const embeddedBlue = await recognizer.embed(blue);
  assertClose(embeddedBlue, expected(blue));
  assert.ok(Math.max(...red.map((v, i) => Math.abs(v - embeddedBlue[i]!))) > 1);
});

test('embedFace aligns by the keypoints with norm_crop first', async () => {
  const image = await decodeRaw('astronaut.png');
  const { kps } = alignedRefs()['astronaut.png']!;
  const { crop } = normCrop(image, kps);
  assertClose(await recognizer.embedFace(image, kps), expected(crop));
});

test('inputMean / inputStd are honoured for models that normalise inside the graph', async () => {
  const raw = await ArcFaceRecognizer.load(model, { intraOpThreads: 1, inputMean: 0, inputStd: 1 });
  try {
    const crop: RgbImage = { data: new Uint8Array(PLANE * 3).fill(3), width: S, height: S };
    assertClose(await raw.embed(crop), expected(crop, 0, 1));
  } finally {
    await raw.dispose();
  }
});

test('a crop of the wrong size is refused', async () => {
  await assert.rejects(recognizer.embed({ data: new Uint8Array(100 * 100 * 3), width: 100, height: 100 }), RangeError);
});

test('a missing model is model_missing; a detector is not a recognizer', async () => {
  await assert.rejects(ArcFaceRecognizer.load(join(dir, 'glintr100.onnx')), (e) => {
    assert.ok(e instanceof EngineError && e.code === 'model_missing');
    assert.match(e.message, /glintr100\.onnx/);
    assert.match(e.message, /non-commercial/);
    return true;
  });
  await assert.rejects(ArcFaceRecognizer.load(DETECTOR, { intraOpThreads: 1 }), (e) => e instanceof EngineError && e.code === 'recognizer_unsupported');
});
