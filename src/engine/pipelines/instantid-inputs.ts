// The demos' input preparation for an InstantID run (gradio_demo/app.py, app-multicontrolnet.py and
// the HF Space; instantid.md §3, §4, §9, §11), from what face analysis found: the raw embedding of the
// face photo; keypoints, face box and output size from the pose image when there is one (else from
// the resized face photo); draw_kps on a canvas of that size; the face box as the control mask
// ("enhance face region"); and the extra ControlNets' maps computed from the same picture
// (`controlnet_map_fn[s](img_controlnet)`) and resized to the output size with PIL's default (bicubic).
// This is the one preparation both the service's tool and the goldens' tests run.
import { EngineError } from '../errors.js';
import { cannyControlImage } from '../control/canny.js';
import { pilResize } from '../control/resample.js';
import { drawKps } from '../face/draw-kps.js';
import type { Box, Keypoints, RgbImage } from '../face/types.js';
import type { ImageU8, InstantIdRunOptions } from './instantid.js';

/** A face found in a picture, in that picture's pixels. */
export interface FoundFace {
  box: Box;
  kps: Keypoints;
}

/** The preprocessors behind Wiro's three ControlNets: 458 openpose, 455 depth, 454 canny. */
export type ControlMapKind = 'openpose' | 'depth' | 'canny';
export const CONTROL_MAP_KINDS: readonly ControlMapKind[] = ['openpose', 'depth', 'canny'];

/**
 * A preprocessor with weights (openpose, depth): the picture → its map (grey or RGB, any size; the
 * demo then resizes it to the output size).
 */
export type ControlMapMaker = (picture: RgbImage, signal?: AbortSignal) => Promise<ImageU8>;

/** Makers for the kinds that need models; canny is built in. */
export type ControlMapMakers = Partial<Record<Exclude<ControlMapKind, 'canny'>, ControlMapMaker>>;

export interface InstantIdInputsRequest {
  /** The raw ArcFace embedding of the face photo (never normalised). */
  embedding: Float32Array;
  /** The picture the kps, box, size and maps come from: the resize_img'd pose image, else the face photo. */
  picture: RgbImage;
  /** The face in `picture` (the pose face when a pose image is used). */
  face: FoundFace;
  /** Output size; default the picture's. Keypoints and box are scaled to it and drawn there (our extension). */
  width?: number;
  height?: number;
  /** Confine IdentityNet and the IP attention to the face box (the demos' default: on). */
  enhanceFaceRegion?: boolean;
  /** Maps for the pipeline's extra ControlNets, in their order. */
  controlMaps?: readonly ControlMapKind[];
  signal?: AbortSignal;
}

export type InstantIdInputs = Pick<InstantIdRunOptions, 'faceEmbedding' | 'kpsImage' | 'controlImages' | 'width' | 'height'> & {
  /** The face box on the output canvas: the one face-region mask (controlMaskTensor makes the tensor). */
  faceBox: readonly [number, number, number, number];
  controlMask?: { box: readonly [number, number, number, number] };
};

/** A map resized to the output size as PIL's Image.resize((w, h)) does by default (bicubic); the same size is kept. */
export function resizeControlMap(map: ImageU8, width: number, height: number): ImageU8 {
  if (map.width === width && map.height === height) return map;
  return { data: pilResize(map.data, map.width, map.height, map.channels, width, height, 'bicubic'), width, height, channels: map.channels };
}

async function controlImage(kind: ControlMapKind, r: InstantIdInputsRequest, makers: ControlMapMakers, width: number, height: number): Promise<ImageU8> {
  const { picture } = r;
  if (kind === 'canny') {
    const data = cannyControlImage(picture.data, picture.width, picture.height, 100, 200, { outWidth: width, outHeight: height });
    return { data, width, height, channels: 3 };
  }
  const make = makers[kind];
  if (!make) throw new EngineError('preprocessor_missing', `no ${kind} preprocessor was given for the ${kind} ControlNet`);
  return resizeControlMap(await make(picture, r.signal), width, height);
}

export async function prepareInstantIdInputs(r: InstantIdInputsRequest, makers: ControlMapMakers = {}): Promise<InstantIdInputs> {
  const { picture, face } = r;
  const width = r.width ?? picture.width;
  const height = r.height ?? picture.height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 8 || height < 8) {
    throw new EngineError('bad_request', `output size ${width}×${height} is not valid`);
  }
  for (const kind of r.controlMaps ?? []) {
    if (!CONTROL_MAP_KINDS.includes(kind)) throw new EngineError('bad_request', `no preprocessor for ${String(kind)} control maps`);
  }
  const sx = width / picture.width;
  const sy = height / picture.height;
  const kps = face.kps.map(([x, y]) => [x * sx, y * sy] as const);
  const kpsImage: ImageU8 = { data: drawKps(width, height, kps), width, height, channels: 3 };
  const controlImages: ImageU8[] = [];
  for (const kind of r.controlMaps ?? []) controlImages.push(await controlImage(kind, r, makers, width, height));
  const [x1, y1, x2, y2] = face.box;
  const faceBox = [x1 * sx, y1 * sy, x2 * sx, y2 * sy] as const;
  return {
    faceEmbedding: r.embedding,
    kpsImage,
    controlImages,
    width,
    height,
    faceBox,
    ...(r.enhanceFaceRegion ?? true ? { controlMask: { box: faceBox } } : {}),
  };
}
