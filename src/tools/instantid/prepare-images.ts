// Preprocessing of the images, as InstantID's demos do it (instantid.md §2.4, §3, §4, §9, §11):
//   face photo → resize_img → face analysis (largest face) → raw ArcFace embedding;
//   pose photo (optional) → resize_img → face analysis → keypoints, control maps and output size;
//   without a pose photo the face photo's own pose is used (as Wiro does).
//   Output size = the resized pose (or face) photo, or the width/height overrides (outputSizeFor).
// The rest — draw_kps on the output canvas, every ControlNet's map from the resized pose (or face)
// photo, the face box / control mask — is the engine's golden-tested prepareInstantIdInputs.
import { EngineError } from '../../engine/errors.js';
import { FaceAnalyzer, type FaceChoice } from '../../engine/face/analysis.js';
import { outputSizeFor, resizeImg, type ResizedImage } from '../../engine/control/resize.js';
import { prepareInstantIdInputs, type ControlMapKind, type ControlMapMakers, type InstantIdInputs } from '../../engine/pipelines/instantid-inputs.js';
import { ImageError, decodeImageRGB } from '../../net/image.js';
import { TaskInputError, type InputFile } from '../../service/runner.js';
import type { FileRef } from '../types.js';
import { faceExecutionProvider } from '../../engine/onnx/provider.js';
import type { FaceModelPaths } from './models.js';
import { NON_COMMERCIAL } from './models.js';

export interface PreparedImages {
  /** What the pipeline runs on: raw embedding, keypoint image, one map per extra ControlNet, mask, size. */
  inputs: InstantIdInputs;
  /** For debugoutput: face choice, which maps were computed and from which image. */
  notes: string[];
}

export interface ImageOptions {
  /** resize_img's max_side: 1024 as the multi-ControlNet demo and the HF Space (app.py: 1280). */
  maxSide: number;
  minSide: number;
  /** resize_img's multiple (64). */
  base?: number;
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
    const resized = resizeImg(img.data, img.width, img.height, { maxSide: o.maxSide, minSide: o.minSide, ...(o.base ? { base: o.base } : {}) });
    return { original: { width: img.width, height: img.height }, resized };
  } catch (err) {
    throw new TaskInputError('image_size', `${label}: ${(err as Error).message.replace(/^resizeImg: /, '')}`);
  }
}

export interface ImageRequest {
  face: { file: InputFile; label: string };
  pose: { file: InputFile; label: string } | null;
  width: number | null;
  height: number | null;
  /** Extra ControlNets in the request's order, each with the preprocessor of its option. */
  controlNets: readonly { id: string; preprocessor: ControlMapKind }[];
  /** "Enhance face region": the face box as the control mask. */
  enhanceFaceRegion: boolean;
}

/** `makers`: the loaded model-backed preprocessors the request's ControlNets need (preprocessors.ts). */
export async function prepareImages(
  analyzer: Pick<FaceAnalyzer, 'choose'>, req: ImageRequest, o: ImageOptions, makers: ControlMapMakers = {},
): Promise<PreparedImages> {
  const notes: string[] = [];
  const face = await decodeResized(req.face.file, req.face.label, o);
  const choose = async (photo: { original: { width: number; height: number }; resized: ResizedImage }, label: string): Promise<FaceChoice> => {
    const img = photo.resized;
    let choice: FaceChoice;
    try {
      choice = await analyzer.choose({ data: img.data, width: img.width, height: img.height }, { label, signal: o.signal });
    } catch (err) {
      // The detector saw the photo resized; the user knows the size they sent.
      const { width, height } = photo.original;
      if (err instanceof EngineError && err.code === 'no_face' && (width !== img.width || height !== img.height)) {
        throw new TaskInputError('no_face', `${err.message}. The photo you sent is ${width}×${height}; faces are looked for in it resized to ${img.width}×${img.height}.`);
      }
      throw err;
    }
    notes.push(...choice.notes);
    return choice;
  };
  const faceChoice = await choose(face, req.face.label);
  const embedding = faceChoice.face.embedding;
  if (!embedding) throw new Error('the face analyzer has no recognizer loaded');
  let base = face;
  let baseLabel = req.face.label;
  let poseFace = faceChoice.face;
  if (req.pose) {
    base = await decodeResized(req.pose.file, req.pose.label, o);
    baseLabel = req.pose.label;
    poseFace = (await choose(base, req.pose.label)).face;
  }
  let size: { width: number; height: number };
  try {
    size = outputSizeFor(base.original.width, base.original.height,
      { ...(req.width !== null ? { width: req.width } : {}), ...(req.height !== null ? { height: req.height } : {}) },
      { maxSide: o.maxSide, minSide: o.minSide, maxSize: 2048, ...(o.base ? { base: o.base } : {}) });
  } catch (err) {
    throw new TaskInputError('image_size', `width/height: ${(err as Error).message}`);
  }
  const inputs = await prepareInstantIdInputs({
    embedding,
    picture: base.resized,
    face: { box: poseFace.box, kps: poseFace.kps },
    width: size.width,
    height: size.height,
    enhanceFaceRegion: req.enhanceFaceRegion,
    controlMaps: req.controlNets.map((c) => c.preprocessor),
    signal: o.signal,
  }, makers);
  const from = `${baseLabel} (resized to ${base.resized.width}×${base.resized.height})`;
  notes.push(`keypoint image (IdentityNet) drawn from the face in ${from}, ${size.width}×${size.height}`);
  for (const c of req.controlNets) {
    const resized = base.resized.width !== size.width || base.resized.height !== size.height ? `, resized to ${size.width}×${size.height}` : '';
    notes.push(`control map ${c.preprocessor} (ControlNet ${c.id}) computed from ${from}${resized}`);
  }
  return { inputs, notes };
}
