// Face analysis for InstantID: insightface's FaceAnalysis.get (detect, then embed) restricted to the
// two models InstantID uses, plus the policy around it: which face to use, the smaller-canvas retries
// ComfyUI_InstantID makes when nothing is found, and errors a user can act on.
import { EngineError } from '../errors.js';
import { ArcFaceRecognizer, type ArcFaceOptions } from './arcface.js';
import type { WarpAlgorithm } from './align.js';
import { DEFAULT_DET_SIZE, ScrfdDetector, type ScrfdOptions } from './scrfd.js';
import { boxArea, assertRgbImage, type Detection, type RgbImage } from './types.js';

export interface Face extends Detection {
  /** Raw ArcFace output (512-d for glintr100), not L2-normalised: what InstantID's Resampler takes. */
  embedding?: Float32Array;
}

/**
 * Which face to use when there are several. 'largest' (by box area) is InstantID's rule. `index`
 * counts faces left to right by box centre (0 = leftmost), as a person pointing at a photo would.
 * `point` is a position in the photo as fractions of its width and height (0..1); the face whose
 * box centre is nearest wins.
 */
export type FaceSelector = 'largest' | { index: number } | { point: readonly [x: number, y: number] };

export interface FaceAnalyzerOptions extends Pick<ScrfdOptions, 'executionProvider' | 'intraOpThreads' | 'deviceId' | 'worker'> {
  /** An SCRFD .onnx with keypoints (antelopev2 scrfd_10g_bnkps.onnx for InstantID). */
  detector: string;
  /** An ArcFace .onnx (antelopev2 glintr100.onnx); without it faces carry no embedding. */
  recognizer?: string;
  recognizerOptions?: Pick<ArcFaceOptions, 'inputMean' | 'inputStd'>;
  /** insightface det_size (640 for InstantID). */
  detSize?: number;
  threshold?: number;
  nmsThreshold?: number;
  /**
   * Canvas sizes to try, in order, when detSize finds nothing: ComfyUI_InstantID's 576, 512, …, 192.
   * A smaller canvas makes every face smaller to the detector, which rescues close-ups and tight
   * crops (a face filling the frame is too big for SCRFD's anchors at 640); it never helps a face
   * that is too small. [] turns retries off (plain insightface behaviour).
   */
  retrySizes?: readonly number[];
  warpAlgorithm?: WarpAlgorithm;
}

export const CUBIQ_RETRY_SIZES: readonly number[] = [576, 512, 448, 384, 320, 256, 192];

/**
 * Smallest face, as a fraction of the canvas side, that det_500m still finds (a face 20 px wide on
 * the 640 canvas is found, 19 px is not; the larger scrfd_10g finds somewhat smaller ones). Used only
 * to tell the user how big a face must be.
 */
const MIN_FACE_FRACTION = 20 / 640;

export interface Detected {
  /** insightface order: score, highest first. */
  faces: Detection[];
  /** The canvas size that found them (detSize unless a retry was needed). */
  detSize: number;
}

export interface FaceChoice {
  /** The face to use, with its embedding when a recognizer is loaded. */
  face: Face;
  /** Every face found, insightface order; `face` is faces[index] (plus its embedding). */
  faces: Detection[];
  index: number;
  detSize: number;
  /** Plain-language notes for the task's debug output (several faces, retries). */
  notes: string[];
}

export interface ChooseOptions {
  select?: FaceSelector;
  /** What to call the image in messages: the request field it came from. */
  label?: string;
  signal?: AbortSignal;
}

export class FaceAnalyzer {
  private constructor(
    readonly detector: ScrfdDetector,
    readonly recognizer: ArcFaceRecognizer | undefined,
    private readonly options: FaceAnalyzerOptions,
  ) {}

  /** Loads the models; a missing file is EngineError 'model_missing' naming it and how to get it. */
  static async load(options: FaceAnalyzerOptions): Promise<FaceAnalyzer> {
    const session = {
      ...(options.executionProvider ? { executionProvider: options.executionProvider } : {}),
      ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
      ...(options.deviceId !== undefined ? { deviceId: options.deviceId } : {}),
      ...(options.worker ? { worker: options.worker } : {}),
    };
    const detector = await ScrfdDetector.load(options.detector, session);
    try {
      const recognizer = options.recognizer
        ? await ArcFaceRecognizer.load(options.recognizer, { ...session, ...options.recognizerOptions })
        : undefined;
      return new FaceAnalyzer(detector, recognizer, options);
    } catch (err) {
      await detector.dispose();
      throw err;
    }
  }

  /** Detection with the retry policy; an empty list means nothing was found at any size. */
  async detect(image: RgbImage, signal?: AbortSignal): Promise<Detected> {
    assertRgbImage(image);
    const first = this.options.detSize ?? DEFAULT_DET_SIZE;
    const fixed = this.detector.fixedSize;
    const sizes = fixed !== undefined ? [fixed] : [first, ...(this.options.retrySizes ?? CUBIQ_RETRY_SIZES).filter((s) => s < first)];
    for (const detSize of sizes) {
      const faces = await this.detector.detect(image, {
        detSize, signal,
        ...(this.options.threshold !== undefined ? { threshold: this.options.threshold } : {}),
        ...(this.options.nmsThreshold !== undefined ? { nmsThreshold: this.options.nmsThreshold } : {}),
      });
      if (faces.length > 0) return { faces, detSize };
    }
    return { faces: [], detSize: sizes[sizes.length - 1]! };
  }

  /** insightface FaceAnalysis.get: every face, highest score first, each embedded when a recognizer is loaded. */
  async analyze(image: RgbImage, signal?: AbortSignal): Promise<Face[]> {
    const { faces } = await this.detect(image, signal);
    const out: Face[] = [];
    for (const d of faces) out.push(await this.withEmbedding(image, d, signal));
    return out;
  }

  /**
   * The one face InstantID uses (only that one is embedded). Throws EngineError 'no_face' when the
   * photo has none, so a task fails before any model runs.
   */
  async choose(image: RgbImage, options: ChooseOptions = {}): Promise<FaceChoice> {
    const label = options.label ?? 'inputImageUrl';
    const { faces, detSize } = await this.detect(image, options.signal);
    if (faces.length === 0) throw noFace(label, image);
    const index = selectFace(faces, options.select ?? 'largest', image);
    const notes: string[] = [];
    const first = this.options.detSize ?? DEFAULT_DET_SIZE;
    if (detSize !== first) notes.push(`${label}: no face at detection size ${first}; found at ${detSize} (the face is large in the frame)`);
    if (faces.length > 1) notes.push(`${label}: ${faces.length} faces found; used ${describeChoice(options.select ?? 'largest')}, box ${formatBox(faces[index]!)}`);
    const face = await this.withEmbedding(image, faces[index]!, options.signal);
    return { face, faces, index, detSize, notes };
  }

  async dispose(): Promise<void> {
    await this.detector.dispose();
    await this.recognizer?.dispose();
  }

  private async withEmbedding(image: RgbImage, d: Detection, signal?: AbortSignal): Promise<Face> {
    if (!this.recognizer) return { ...d };
    const warp = this.options.warpAlgorithm ? { algorithm: this.options.warpAlgorithm } : {};
    return { ...d, embedding: await this.recognizer.embedFace(image, d.kps, { ...warp, ...(signal ? { signal } : {}) }) };
  }
}

/**
 * The index into `faces` that the selector picks. Equal areas resolve as InstantID's
 * sorted(faces, key=area)[-1] does (the later face); equal distances keep the earlier face.
 */
export function selectFace(faces: readonly Detection[], selector: FaceSelector, image: { width: number; height: number }): number {
  if (faces.length === 0) throw new RangeError('selectFace: no faces');
  const centre = (d: Detection): [number, number] => [(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2];
  const argBest = (better: (a: number, b: number) => boolean): number =>
    faces.reduce((best, _, i) => (better(i, best) ? i : best), 0);
  if (selector === 'largest') return argBest((i, j) => boxArea(faces[i]!.box) >= boxArea(faces[j]!.box));
  if ('index' in selector) {
    const { index } = selector;
    if (!Number.isInteger(index) || index < 0 || index >= faces.length) {
      throw new EngineError('face_index', `face index ${index} is out of range: the photo has ${faces.length} face${faces.length === 1 ? '' : 's'} (0 = leftmost)`);
    }
    const byX = faces.map((_, i) => i).sort((a, b) => centre(faces[a]!)[0] - centre(faces[b]!)[0] || a - b);
    return byX[index]!;
  }
  const [fx, fy] = selector.point;
  if (!Number.isFinite(fx) || !Number.isFinite(fy)) throw new EngineError('face_point', `face position (${fx}, ${fy}) must be two numbers`);
  const [px, py] = [fx * image.width, fy * image.height];
  const dist = (i: number): number => {
    const [cx, cy] = centre(faces[i]!);
    return (cx - px) ** 2 + (cy - py) ** 2;
  };
  return argBest((i, j) => dist(i) < dist(j));
}

/** The smallest face, in pixels of this image, that detection can be expected to find. */
export function minimumFaceSize(image: { width: number; height: number }): number {
  return Math.ceil(Math.max(image.width, image.height) * MIN_FACE_FRACTION);
}

function noFace(label: string, image: RgbImage): EngineError {
  return new EngineError(
    'no_face',
    `no face detected in ${label}: use a photo with one clearly visible face, at least ${minimumFaceSize(image)} px across ` +
      `(1/32 of this ${image.width}×${image.height} photo's longer side), facing the camera and not cut off`,
  );
}

function describeChoice(select: FaceSelector): string {
  if (select === 'largest') return 'the largest';
  if ('index' in select) return `face ${select.index} from the left`;
  return `the face nearest (${select.point[0]}, ${select.point[1]})`;
}

function formatBox(d: Detection): string {
  return `[${d.box.map((v) => Math.round(v)).join(', ')}]`;
}
