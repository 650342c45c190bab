// SCRFD face detection as insightface 0.7.3 runs it (model_zoo/retinaface.py; instantid.md §2.3):
// letterbox to det_size (aspect kept, cv2 bilinear, zero pad bottom/right), (pixel − 127.5) / 128 in
// RGB, decode anchor-free distances × stride, score ≥ threshold, divide by the letterbox scale,
// sort by score, greedy NMS with the "+1" area convention.
//
// Works with any SCRFD export that has keypoints: antelopev2's scrfd_10g_bnkps, buffalo's det_10g /
// det_2.5g / det_500m (9 outputs: 3 strides × 2 anchors) and the 15-output 5-stride variants
// (1 anchor). The outputs are told apart by their last dimension (1 score, 4 box, 10 keypoints) and
// their row counts rather than by position or name, so exports with other names or a leading batch
// dimension of 1 decode the same way.
import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EngineError } from '../errors.js';
import { createSession, type Session, type SessionOptions } from '../onnx/session.js';
import type { HostTensor } from '../onnx/dtype.js';
import { resizeBilinearCv } from './resize.js';
import { assertRgbImage, type Box, type Detection, type Keypoints, type Point, type RgbImage } from './types.js';

export const DEFAULT_DET_SIZE = 640;
export const DEFAULT_SCORE_THRESHOLD = 0.5;
export const DEFAULT_NMS_THRESHOLD = 0.4;
const INPUT_MEAN = 127.5;
const INPUT_STD = 128;

export interface Letterbox {
  /** [1, 3, size, size] float32, RGB planes. */
  tensor: HostTensor<'float32'>;
  /** Original pixels × scale = detector pixels (one scale for both axes, as insightface). */
  scale: number;
}

/**
 * insightface's detect() preprocessing: the longer side (relative to the square canvas) fills it,
 * the other is truncated with int(); the resized image sits top-left on a black canvas. insightface
 * is handed BGR and its blobFromImage(swapRB=True) flips it back, so the network sees RGB: what we
 * already hold.
 */
export function letterbox(image: RgbImage, detSize: number): Letterbox {
  assertRgbImage(image);
  if (!Number.isInteger(detSize) || detSize < 32 || detSize % 32 !== 0) {
    throw new RangeError(`det size ${detSize}: must be a positive multiple of 32`);
  }
  const ratio = image.height / image.width;
  let w: number;
  let h: number;
  if (ratio > 1) {
    h = detSize;
    w = Math.trunc(h / ratio);
  } else {
    w = detSize;
    h = Math.trunc(w * ratio);
  }
  // A sliver image would truncate to 0 rows; OpenCV would refuse it, one pixel is the useful answer.
  w = Math.max(w, 1);
  h = Math.max(h, 1);
  const resized = resizeBilinearCv(image, w, h);
  const plane = detSize * detSize;
  const data = new Float32Array(3 * plane).fill((0 - INPUT_MEAN) / INPUT_STD);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3;
      const d = y * detSize + x;
      data[d] = (resized.data[s]! - INPUT_MEAN) / INPUT_STD;
      data[plane + d] = (resized.data[s + 1]! - INPUT_MEAN) / INPUT_STD;
      data[2 * plane + d] = (resized.data[s + 2]! - INPUT_MEAN) / INPUT_STD;
    }
  }
  return { tensor: { dtype: 'float32', dims: [1, 3, detSize, detSize], data }, scale: h / image.height };
}

/** The outputs of one stride level. */
export interface StrideLevel {
  stride: number;
  /** [n] sigmoid scores, n = cells × anchors. */
  scores: Float32Array;
  /** [n, 4] distances (l, t, r, b) in units of the stride. */
  boxes: Float32Array;
  /** [n, 10] keypoint offsets in units of the stride. */
  kps: Float32Array;
}

/**
 * Groups raw outputs into stride levels. Rows = (size/stride)² × anchors; the level with the most
 * rows is stride 8, then 16, 32 (, 64, 128). Anchors per cell follow from stride 8's row count.
 */
export function groupOutputs(outputs: Record<string, HostTensor>, detSize: number): { levels: StrideLevel[]; anchors: number } {
  const byKind = new Map<number, { rows: number; data: Float32Array }[]>();
  for (const [name, t] of Object.entries(outputs)) {
    if (t.dtype !== 'float32') throw new EngineError('detector_unsupported', `detector output ${name} is ${t.dtype}, expected float32`);
    const dims = t.dims.length === 3 && t.dims[0] === 1 ? t.dims.slice(1) : t.dims; // optional batch of 1
    if (dims.length !== 2) throw new EngineError('detector_unsupported', `detector output ${name} has shape [${t.dims.join(', ')}]`);
    const [rows, cols] = dims as [number, number];
    const list = byKind.get(cols) ?? [];
    list.push({ rows, data: t.data as Float32Array });
    byKind.set(cols, list);
  }
  const scores = byKind.get(1) ?? [];
  const boxes = byKind.get(4) ?? [];
  const kps = byKind.get(10) ?? [];
  const n = scores.length;
  if (n === 0 || boxes.length !== n || kps.length !== n || byKind.size !== 3) {
    throw new EngineError(
      'detector_unsupported',
      `the detector model's outputs are not SCRFD with keypoints (expected score/box/keypoint outputs per stride, ` +
        `got last dimensions ${[...byKind.entries()].map(([c, l]) => `${c}×${l.length}`).join(', ')})`,
    );
  }
  for (const l of [scores, boxes, kps]) l.sort((a, b) => b.rows - a.rows);
  const cells8 = (detSize / 8) ** 2;
  const anchors = scores[0]!.rows / cells8;
  const levels: StrideLevel[] = [];
  for (let i = 0; i < n; i++) {
    const stride = 8 << i;
    const rows = (detSize / stride) ** 2 * anchors;
    if (!Number.isInteger(anchors) || scores[i]!.rows !== rows || boxes[i]!.rows !== rows || kps[i]!.rows !== rows) {
      throw new EngineError('detector_unsupported', `detector outputs do not match strides 8…${8 << (n - 1)} at ${detSize}×${detSize}`);
    }
    levels.push({ stride, scores: scores[i]!.data, boxes: boxes[i]!.data, kps: kps[i]!.data });
  }
  return { levels, anchors };
}

/**
 * Decodes every anchor with score ≥ threshold. Anchor centres are (x·s, y·s) without a half-pixel
 * offset, row-major, each centre repeated `anchors` times. Values are divided by `scale` to return
 * to original pixels. Float32 rounding follows numpy's, where insightface computes in float32.
 */
export function decode(levels: StrideLevel[], anchors: number, detSize: number, scale: number, threshold: number): Detection[] {
  const f = Math.fround;
  const s = f(scale); // numpy divides a float32 array by a Python float in float32
  const out: Detection[] = [];
  for (const { stride, scores, boxes, kps } of levels) {
    const width = detSize / stride;
    for (let i = 0; i < scores.length; i++) {
      const score = scores[i]!;
      if (!(score >= threshold)) continue;
      const cell = Math.floor(i / anchors);
      const cx = (cell % width) * stride;
      const cy = Math.floor(cell / width) * stride;
      const d = (k: number): number => f(boxes[i * 4 + k]! * stride);
      const box: Box = [f(f(cx - d(0)) / s), f(f(cy - d(1)) / s), f(f(cx + d(2)) / s), f(f(cy + d(3)) / s)];
      const pts: Point[] = [];
      for (let k = 0; k < 5; k++) {
        const px = f(cx + f(kps[i * 10 + 2 * k]! * stride));
        const py = f(cy + f(kps[i * 10 + 2 * k + 1]! * stride));
        pts.push([f(px / s), f(py / s)]);
      }
      out.push({ box, score, kps: pts as unknown as Keypoints });
    }
  }
  return out;
}

/** Intersection over union with insightface's pixel-inclusive "+1" widths. */
export function iouPlusOne(a: Box, b: Box): number {
  const area = (q: Box): number => (q[2] - q[0] + 1) * (q[3] - q[1] + 1);
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]) + 1);
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]) + 1);
  const inter = w * h;
  return inter / (area(a) + area(b) - inter);
}

/**
 * Sorts by score (descending) and keeps each detection whose IoU with every kept higher-scoring one
 * is ≤ threshold. Ties keep their input order (numpy's argsort is not stable; ties are vanishingly
 * rare in float scores and either choice is a valid insightface result).
 */
export function nms<T extends { box: Box; score: number }>(dets: readonly T[], threshold: number): T[] {
  const order = dets.map((_, i) => i).sort((i, j) => dets[j]!.score - dets[i]!.score || i - j);
  const kept: T[] = [];
  for (const i of order) {
    const d = dets[i]!;
    if (kept.every((k) => iouPlusOne(k.box, d.box) <= threshold)) kept.push(d);
  }
  return kept;
}

export interface DetectOptions {
  /** Square canvas side, a multiple of 32 (insightface det_size; 640 for InstantID). */
  detSize?: number;
  threshold?: number;
  nmsThreshold?: number;
  signal?: AbortSignal;
}

export type ScrfdOptions = Pick<SessionOptions, 'executionProvider' | 'intraOpThreads' | 'deviceId' | 'worker'>;

/** A loaded SCRFD model. Runs in the ORT worker thread, so detection never blocks the event loop. */
export class ScrfdDetector {
  private constructor(private readonly session: Session, readonly modelPath: string) {}

  static async load(modelPath: string, options: ScrfdOptions = {}): Promise<ScrfdDetector> {
    if (!existsSync(modelPath)) throw missingDetector(modelPath);
    const session = await createSession(modelPath, { interOpThreads: 1, ...options });
    const input = session.inputs[0];
    if (session.inputs.length !== 1 || !input || input.shape.length !== 4) {
      await session.dispose();
      throw new EngineError('detector_unsupported', `${modelPath} is not an SCRFD detector (expected one NCHW image input)`);
    }
    const fixed = input.shape.slice(2).filter((d): d is number => typeof d === 'number');
    if (fixed.length === 2 && fixed[0] !== fixed[1]) {
      await session.dispose();
      throw new EngineError('detector_unsupported', `${modelPath}: fixed input ${fixed.join('×')} is not square`);
    }
    return new ScrfdDetector(session, modelPath);
  }

  /** The canvas size baked into the model, if its input is not dynamic (then detSize is ignored, as insightface does). */
  get fixedSize(): number | undefined {
    const d = this.session.inputs[0]!.shape[2];
    return typeof d === 'number' ? d : undefined;
  }

  /** Faces in original pixels, highest score first. */
  async detect(image: RgbImage, options: DetectOptions = {}): Promise<Detection[]> {
    const detSize = this.fixedSize ?? options.detSize ?? DEFAULT_DET_SIZE;
    const { tensor, scale } = letterbox(image, detSize);
    const outputs = await this.session.run({ [this.session.inputNames[0]!]: tensor }, { transfer: true, signal: options.signal });
    const { levels, anchors } = groupOutputs(outputs, detSize);
    const candidates = decode(levels, anchors, detSize, scale, options.threshold ?? DEFAULT_SCORE_THRESHOLD);
    return nms(candidates, options.nmsThreshold ?? DEFAULT_NMS_THRESHOLD);
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

export function missingDetector(path: string): EngineError {
  return new EngineError(
    'model_missing',
    `face detector model not found: ${path}. InstantID uses insightface's antelopev2 pack (scrfd_10g_bnkps.onnx for detection, glintr100.onnx for recognition): ` +
      `download antelopev2.zip (listed in insightface's python-package README; InstantID's README links a copy) and unzip it ` +
      `into ${dirname(path)} so that ${basename(path)} sits directly there, not in a nested antelopev2/antelopev2/ folder. ` +
      `insightface's models are licensed for non-commercial research use only.`,
  );
}
