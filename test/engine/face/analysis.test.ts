// FaceAnalyzer: InstantID's face policy on the real det_500m — the largest face, other selectors,
// the smaller-canvas retries, and errors a user can act on.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaceAnalyzer, minimumFaceSize, selectFace } from '../../../src/engine/face/analysis.js';
import { ArcFaceRecognizer } from '../../../src/engine/face/arcface.js';
import { resizeBilinearCv } from '../../../src/engine/face/resize.js';
import { EngineError } from '../../../src/engine/errors.js';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { writeModel } from '../../../src/engine/onnx/serialize.js';
import type { Detection, RgbImage } from '../../../src/engine/face/types.js';
import { decodeImageRGB } from '../../../src/net/image.js';
import { asset } from '../../helpers/paths.js';
import { f32, randn } from '../../helpers/reference-ops.js';
import { DETECTOR } from './fixtures.js';

/** A stand-in recognizer: [N, 3, 112, 112] → mean per channel → [N, 512]. */
async function tinyRecognizer(dir: string): Promise<string> {
  const g = new GraphBuilder();
  const x = g.input('input.1', ['N', 3, 112, 112]);
  g.output(g.matmul(g.reduceMean(x, [2, 3], false), g.param('w', [3, 512], f32(randn([3, 512], 5)))), 'embedding');
  const path = join(dir, 'tiny-recognizer.onnx');
  await writeModel(g.build(), path);
  return path;
}

const dir = mkdtempSync(join(tmpdir(), 'likeness-faces-'));
const recognizerPath = await tinyRecognizer(dir);
const analyzer = await FaceAnalyzer.load({ detector: DETECTOR, recognizer: recognizerPath, intraOpThreads: 1 });
after(async () => {
  await analyzer.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const photo = async (name: string) => decodeImageRGB(readFileSync(asset(`faces/${name}`)));
const isNoFace = (label: string, px: number) => (e: unknown): boolean => {
  assert.ok(e instanceof EngineError, String(e));
  assert.equal(e.code, 'no_face');
  assert.match(e.message, new RegExp(`^no face detected in ${label}: use a photo with one clearly visible face, at least ${px} px`));
  return true;
};

test('one face: chosen, embedded from its aligned crop, no notes', async () => {
  const image = await photo('astronaut.png');
  const choice = await analyzer.choose(image);
  assert.equal(choice.faces.length, 1);
  assert.equal(choice.index, 0);
  assert.equal(choice.detSize, 640);
  assert.deepEqual(choice.notes, []);
  const recognizer = await ArcFaceRecognizer.load(recognizerPath, { intraOpThreads: 1 });
  try {
    assert.deepEqual(choice.face.embedding, await recognizer.embedFace(image, choice.face.kps));
  } finally {
    await recognizer.dispose();
  }
});

test('no face: no_face before any generation, naming the field and the size that works', async () => {
  const image = await photo('rocket_noface.jpg');
  await assert.rejects(analyzer.choose(image), isNoFace('inputImageUrl', 20)); // 640 / 32
  await assert.rejects(analyzer.choose(image, { label: 'inputPoseImageUrl' }), isNoFace('inputPoseImageUrl', 20));
  assert.equal(minimumFaceSize({ width: 4000, height: 3000 }), 125);
});

test('several faces: the largest is used, and the notes say so', async () => {
  const image = await photo('solvay_1927_1024w.jpg');
  const choice = await analyzer.choose(image);
  assert.equal(choice.faces.length, 29);
  const areas = choice.faces.map((f) => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]));
  assert.equal(choice.index, areas.indexOf(Math.max(...areas)));
  assert.equal(choice.notes.length, 1);
  assert.match(choice.notes[0]!, /^inputImageUrl: 29 faces found; used the largest, box \[\d+, \d+, \d+, \d+\]$/);
  assert.equal(choice.face.embedding?.length, 512);
});

test('a face by index (left to right) or by position', async () => {
  const image = await photo('solvay_1927_1024w.jpg');
  const { faces } = await analyzer.detect(image);
  const leftmost = (await analyzer.choose(image, { select: { index: 0 } })).face;
  assert.equal(leftmost.box[0], Math.min(...faces.map((f) => f.box[0])));
  const target = faces[7]!;
  const point = [(target.box[0] + target.box[2]) / 2 / image.width, (target.box[1] + target.box[3]) / 2 / image.height] as const;
  assert.deepEqual((await analyzer.choose(image, { select: { point } })).face.box, target.box);
  await assert.rejects(analyzer.choose(image, { select: { index: 29 } }), (e) => e instanceof EngineError && e.code === 'face_index');
});

test('largest-area ties resolve as sorted(…)[-1] does: the later face', () => {
  const face = (x: number, score: number): Detection => ({ box: [x, 0, x + 10, 10], score, kps: [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0]] });
  const image = { width: 100, height: 100 };
  assert.equal(selectFace([face(0, 0.9), face(50, 0.8)], 'largest', image), 1);
  assert.equal(selectFace([face(50, 0.9), face(0, 0.8)], { index: 0 }, image), 1);
  assert.equal(selectFace([face(50, 0.9), face(0, 0.8)], { point: [0.9, 0.1] }, image), 0);
});

/** A tight crop of the astronaut's head blown up to 1024 px wide: too big for SCRFD at 640. */
async function closeUp(): Promise<RgbImage> {
  const src = await photo('astronaut.png');
  const [x0, y0, w, h] = [150, 50, 150, 140];
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(src.data.subarray(((y0 + y) * src.width + x0) * 3, ((y0 + y) * src.width + x0 + w) * 3), y * w * 3);
  return resizeBilinearCv({ data, width: w, height: h }, 1024, Math.round((1024 * h) / w));
}

test('a close-up missed at 640 is found by the smaller-canvas retries, with a note', async () => {
  const image = await closeUp();
  const choice = await analyzer.choose(image);
  assert.ok(choice.detSize < 640, `found at ${choice.detSize}`);
  assert.match(choice.notes[0]!, /no face at detection size 640; found at \d+/);
  const plain = await FaceAnalyzer.load({ detector: DETECTOR, retrySizes: [], intraOpThreads: 1 });
  try {
    await assert.rejects(plain.choose(image), isNoFace('inputImageUrl', 32));
  } finally {
    await plain.dispose();
  }
});

test('analyze() is FaceAnalysis.get: every face, highest score first, each embedded', async () => {
  const faces = await analyzer.analyze(await photo('fullbody_standing.jpg'));
  assert.equal(faces.length, 1);
  assert.equal(faces[0]!.embedding?.length, 512);
});

test('a missing recognizer is model_missing and names the file', async () => {
  await assert.rejects(FaceAnalyzer.load({ detector: DETECTOR, recognizer: join(dir, 'antelopev2', 'glintr100.onnx') }), (e) => {
    assert.ok(e instanceof EngineError && e.code === 'model_missing');
    assert.match(e.message, /antelopev2\/glintr100\.onnx/);
    return true;
  });
});
