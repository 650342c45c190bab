// Preprocessing of the images, as InstantID's demos do it (instantid.md §2.4, §3, §4, §9, §11):
//   face photo → resize_img → face analysis (largest face) → raw ArcFace embedding;
//   pose photo (optional) → resize_img → face analysis → keypoints, control maps and output size;
//   without a pose photo the face photo's own pose is used (as Wiro does).
//   Output size = the resized pose (or face) photo, or the width/height overrides (outputSizeFor).
//   IdentityNet image = draw_kps on the output canvas; canny map = cv2.Canny(100, 200) of the resized
//   pose (or face) photo, resized to the output size; the face box (for "enhance face region").
import { EngineError } from '../../engine/errors.js';
import { FaceAnalyzer, type FaceChoice } from '../../engine/face/analysis.js';
import { drawKps } from '../../engine/face/draw-kps.js';
import type { Keypoints } from '../../engine/face/types.js';
import { cannyControlImage } from '../../engine/control/canny.js';
import { outputSizeFor, resizeImg, type ResizedImage } from '../../engine/control/resize.js';
import type { ImageU8 } from '../../engine/pipelines/instantid.js';
import { ImageError, decodeImageRGB } from '../../net/image.js';
import { TaskInputError, type InputFile } from '../../service/runner.js';
import type { FileRef } from '../types.js';
import { faceExecutionProvider } from '../../engine/onnx/provider.js';
import { unsupportedControlNet } from './availability.js';
import type { FaceModelPaths } from './models.js';
import { NON_COMMERCIAL } from './models.js';

export interface PreparedImages {
  /** Raw ArcFace embedding of the face photo's chosen face. */
  embedding: Float32Array;
  kpsImage: ImageU8;
  /** One per extra ControlNet, in the request's order. */
  controlImages: ImageU8[];
  width: number;
  height: number;
  /** The face box on the output canvas (the control mask). */
  faceBox: [number, number, number, number];
  notes: string[];
}

export interface ImageOptions {
  /** resize_img's max_side: 1024 as the multi-ControlNet demo and the HF Space (app.py: 1280). */
  maxSide: number;
  minSide: number;
  signal: AbortSignal;
}

/** Errors a user can act on become TaskInputError (the task ends as task_error); others pass through. */
export function asInputError(err: unknown, extra = ''): unknown {
  if (err instanceof TaskInputError) return err;
  if (err instanceof EngineError || err instanceof ImageError) {
    const licence = err.code === 'model_missing' && !err.message.includes('non-commercial') ? ` These models are ${NON_COMMERCIAL}.` : '';
    return new TaskInputError(err.code, `${err.message}${licence}${extra}`);
  }
  return err;
}

/** Keeps one analyzer loaded (the tool is persistent) and swaps it when the configured models change. */
export class FaceModels {
  private current: { key: string; analyzer: Promise<FaceAnalyzer> } | undefined;

  constructor(private readonly threads?: number) {}

  get(paths: FaceModelPaths): Promise<FaceAnalyzer> {
    const key = `${paths.detector}\0${paths.recognizer}`;
    if (this.current?.key !== key) {
      const old = this.current;
      const analyzer = FaceAnalyzer.load({
        detector: paths.detector, recognizer: paths.recognizer, executionProvider: faceExecutionProvider(),
        ...(this.threads !== undefined ? { intraOpThreads: this.threads } : {}),
      });
      this.current = { key, analyzer };
      analyzer.catch(() => { if (this.current?.analyzer === analyzer) this.current = undefined; });
      void old?.analyzer.then((a) => a.dispose(), () => undefined);
    }
    return this.current!.analyzer;
  }

  async dispose(): Promise<void> {
    const old = this.current;
    this.current = undefined;
    await old?.analyzer.then((a) => a.dispose(), () => undefined);
  }
}

/** How messages name an image: the URL field when it came from a URL. */
export function fieldLabel(id: string, ref: FileRef | null): string {
  return ref?.source === 'url' ? `${id}Url` : id;
}

async function decodeResized(file: InputFile, label: string, o: ImageOptions): Promise<{ original: { width: number; height: number }; resized: ResizedImage }> {
  const img = await decodeImageRGB(file.bytes, { label });
  try {
    return { original: { width: img.width, height: img.height }, resized: resizeImg(img.data, img.width, img.height, { maxSide: o.maxSide, minSide: o.minSide }) };
  } catch (err) {
    throw new TaskInputError('image_size', `${label}: ${(err as Error).message.replace(/^resizeImg: /, '')}`);
  }
}

const scalePoint = ([x, y]: readonly [number, number], sx: number, sy: number): [number, number] => [x * sx, y * sy];

export interface ImageRequest {
  face: { file: InputFile; label: string };
  pose: { file: InputFile; label: string } | null;
  width: number | null;
  height: number | null;
  /** Extra ControlNet ids in the request's order. */
  controlNets: readonly string[];
}

export async function prepareImages(analyzer: FaceAnalyzer, req: ImageRequest, o: ImageOptions): Promise<PreparedImages> {
  const notes: string[] = [];
  const face = await decodeResized(req.face.file, req.face.label, o);
  const choose = async (img: ResizedImage, label: string): Promise<FaceChoice> => {
    const choice = await analyzer.choose({ data: img.data, width: img.width, height: img.height }, { label, signal: o.signal });
    notes.push(...choice.notes);
    return choice;
  };
  const faceChoice = await choose(face.resized, req.face.label);
  const embedding = faceChoice.face.embedding;
  if (!embedding) throw new Error('the face analyzer has no recognizer loaded');
  let base = face;
  let poseFace = faceChoice.face;
  if (req.pose) {
    base = await decodeResized(req.pose.file, req.pose.label, o);
    poseFace = (await choose(base.resized, req.pose.label)).face;
  }
  let size: { width: number; height: number };
  try {
    size = outputSizeFor(base.original.width, base.original.height,
      { ...(req.width !== null ? { width: req.width } : {}), ...(req.height !== null ? { height: req.height } : {}) },
      { maxSide: o.maxSide, minSide: o.minSide, maxSize: 2048 });
  } catch (err) {
    throw new TaskInputError('image_size', `width/height: ${(err as Error).message}`);
  }
  const { width: W, height: H } = size;
  const sx = W / base.resized.width;
  const sy = H / base.resized.height;
  const kps = poseFace.kps.map((p) => scalePoint(p, sx, sy)) as unknown as Keypoints;
  const [x1, y1, x2, y2] = poseFace.box;
  const controlImages: ImageU8[] = req.controlNets.map((id) => {
    if (id === '454') {
      const data = cannyControlImage(base.resized.data, base.resized.width, base.resized.height, 100, 200, { outWidth: W, outHeight: H });
      return { data, width: W, height: H, channels: 3 };
    }
    throw new TaskInputError('controlnet_unsupported', unsupportedControlNet(id) ?? `ControlNet ${id} has no preprocessor in this version of Likeness`);
  });
  return {
    embedding,
    kpsImage: { data: drawKps(W, H, kps), width: W, height: H, channels: 3 },
    controlImages,
    width: W,
    height: H,
    faceBox: [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
    notes,
  };
}
