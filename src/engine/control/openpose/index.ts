// OpenPose body pose maps as controlnet_aux's OpenposeDetector.__call__ draws them (include_body=True,
// include_hand=False, include_face=False — hands and face are not implemented): the image is made
// 3-channel (HWC3), resized to the detect resolution (resize_image: short side → resolution, both sides
// rounded to multiples of 64), the body is detected on its BGR copy and drawn on a black canvas of that
// size, and the canvas is resized (INTER_LINEAR) to resize_image's size for the image resolution.
//
// Weights: body_pose_model.pth from https://huggingface.co/lllyasviel/Annotators (also
// lllyasviel/ControlNet annotator/ckpts/), read as is by the safe torch-pickle reader (a safetensors
// file with the same tensor names works too). See OPENPOSE_LICENCE.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../../errors.js';
import type { NetLoadOptions } from '../../nets/net-session.js';
import { resizeBilinearCv } from '../../face/resize.js';
import { cvResize, type CvImage } from '../cv-resize.js';
import { loadBodyNet, type BodyNetRunner } from './body-net.js';
import { averageMaps, bodyScaleInput, bodyScales, decodeBody, type BodyOptions, type BodyResult } from './body.js';
import { drawBodyPose } from './draw.js';

export { drawBodyPose, type PoseDrawing } from './draw.js';
export { decodeBody, type BodyResult, type Candidate, type PersonRow } from './body.js';

/** Where the service looks for the body model, relative to $LIKENESS_HOME. */
export const OPENPOSE_BODY_FILE = join('models', 'annotators', 'body_pose_model.pth');
export const OPENPOSE_DOWNLOAD = 'https://huggingface.co/lllyasviel/Annotators/resolve/main/body_pose_model.pth';
/**
 * What we know of the body model's licence. controlnet_aux's code is Apache-2.0, but its open_pose
 * module says the preprocessor "is licensed by CMU for non-commercial use only", and the weights are
 * CMU OpenPose's body model converted to torch; treat them as non-commercial research use.
 */
export const OPENPOSE_LICENCE = 'CMU OpenPose body model: non-commercial research use only (the OpenPose licence; controlnet_aux says so too)';

export const DEFAULT_DETECT_RESOLUTION = 512;
export const DEFAULT_IMAGE_RESOLUTION = 512;
/** Larger resolutions are refused: the maps are float64 planes of the detect size (4096² = 128 MB each). */
export const MAX_RESOLUTION = 4096;

/** An HWC image: RGB (channels 3, the default), gray (1) or RGBA (4). */
export interface PoseImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels?: number;
}

export interface RgbMap {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DetectOptions {
  /** Size of the short side the pose is detected and drawn at (rounded to 64s). Default 512. */
  detectResolution?: number;
  /** Size of the short side of the returned map, computed from the detect image. Default 512. */
  imageResolution?: number;
}

/** controlnet_aux util.HWC3: gray → 3 channels, RGBA composited on white (float32, truncated). */
export function hwc3(img: PoseImage): CvImage<Uint8Array> {
  const c = img.channels ?? 3;
  const n = img.width * img.height;
  if (![1, 3, 4].includes(c) || img.data.length !== n * c) {
    throw new RangeError(`openpose: ${img.data.length} bytes are not a ${img.width}×${img.height} image of 1, 3 or 4 channels`);
  }
  if (c === 3) return { data: img.data, width: img.width, height: img.height, channels: 3 };
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (c === 1) {
      out.fill(img.data[i]!, i * 3, i * 3 + 3);
      continue;
    }
    const alpha = Math.fround(img.data[i * 4 + 3]! / 255);
    const white = Math.fround(255 * Math.fround(1 - alpha));
    for (let k = 0; k < 3; k++) {
      const v = Math.fround(Math.fround(img.data[i * 4 + k]! * alpha) + white);
      out[i * 3 + k] = Math.trunc(Math.min(255, Math.max(0, v)));
    }
  }
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

/** numpy.round: half to even. */
function npRound(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The size controlnet_aux util.resize_image gives a width × height image, and its filter. */
export function resizeImagePlan(width: number, height: number, resolution: number): { width: number; height: number; interpolation: 'lanczos4' | 'area' } {
  if (!(resolution > 0) || !Number.isFinite(resolution)) throw new RangeError(`openpose: resolution ${resolution} must be a positive number`);
  const k = resolution / Math.min(height, width);
  const h = npRound((height * k) / 64) * 64;
  const w = npRound((width * k) / 64) * 64;
  if (w < 64 || h < 64) {
    throw new RangeError(`openpose: a ${width}×${height} image at resolution ${resolution} rounds to ${w}×${h}: its aspect ratio is too extreme`);
  }
  return { width: w, height: h, interpolation: k > 1 ? 'lanczos4' : 'area' };
}

/** util.resize_image(img, resolution): short side to `resolution`, both sides rounded to multiples of 64. */
export function resizeImage(img: CvImage<Uint8Array>, resolution: number): CvImage<Uint8Array> {
  const plan = resizeImagePlan(img.width, img.height, resolution);
  return cvResize(img, plan.width, plan.height, plan.interpolation);
}

/** RGB ↔ BGR (the same swap both ways). */
export function swapRB(img: CvImage<Uint8Array>): CvImage<Uint8Array> {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < img.data.length; i += 3) {
    out[i] = img.data[i + 2]!;
    out[i + 1] = img.data[i + 1]!;
    out[i + 2] = img.data[i]!;
  }
  return { ...img, data: out };
}

export interface OpenposeOpenOptions extends Partial<NetLoadOptions> {
  body?: BodyOptions;
}

export interface PoseEstimate extends BodyResult {
  /** The detect-size image's size: candidate coordinates are in its pixels. */
  width: number;
  height: number;
}

export class OpenposeDetector {
  private constructor(private readonly net: BodyNetRunner, private readonly body: BodyOptions) {}

  /** Opens body_pose_model.pth (or a safetensors copy); a missing file is an error saying what to download. */
  static async open(weightsPath: string, options: OpenposeOpenOptions = {}): Promise<OpenposeDetector> {
    if (!existsSync(weightsPath)) {
      throw new EngineError('missing_model',
        `the openpose body model is not at ${weightsPath}: download body_pose_model.pth from ${OPENPOSE_DOWNLOAD} and save it there (licence: ${OPENPOSE_LICENCE})`);
    }
    const { body, cacheDir, ...rest } = options;
    const net = await loadBodyNet(weightsPath, { cacheDir: cacheDir ?? join(process.env.LIKENESS_HOME ?? 'data', 'cache', 'onnx'), ...rest });
    return new OpenposeDetector(net, body ?? {});
  }

  /** Body.__call__ on an RGB image: the candidates and people, in its pixels. */
  async estimate(rgb: CvImage<Uint8Array>, signal?: AbortSignal): Promise<PoseEstimate> {
    const bgr = swapRB(rgb);
    const runs = [];
    for (const scale of bodyScales(this.body)) {
      const scaled = bodyScaleInput(bgr, scale, this.body);
      const out = await this.net.run(scaled.input, signal ? { signal } : {});
      runs.push({ scaled, out });
    }
    const maps = averageMaps(rgb.width, rgb.height, runs);
    return { ...decodeBody(maps, this.body), width: rgb.width, height: rgb.height };
  }

  /** OpenposeDetector.__call__(image, detect_resolution, image_resolution): the pose map, RGB. */
  async detect(image: PoseImage, opts: DetectOptions & { signal?: AbortSignal } = {}): Promise<RgbMap & { people: number }> {
    for (const [name, v] of [['detectResolution', opts.detectResolution], ['imageResolution', opts.imageResolution]] as const) {
      if (v !== undefined && !(v >= 1 && v <= MAX_RESOLUTION)) throw new RangeError(`openpose: ${name} ${v} is outside 1..${MAX_RESOLUTION}`);
    }
    const input = resizeImage(hwc3(image), opts.detectResolution ?? DEFAULT_DETECT_RESOLUTION);
    const pose = await this.estimate(input, opts.signal);
    const canvas = drawBodyPose(input.width, input.height, pose.candidate, pose.subset);
    const out = resizeImagePlan(input.width, input.height, opts.imageResolution ?? DEFAULT_IMAGE_RESOLUTION);
    const map = resizeBilinearCv(canvas, out.width, out.height);
    return { ...map, people: pose.subset.length };
  }

  dispose(): Promise<void> {
    return this.net.dispose();
  }
}
