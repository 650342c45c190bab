// The demos' input preparation for an InstantID run (gradio_demo/app.py, app-multicontrolnet.py;
// instantid.md §3, §4, §9, §11), from what face analysis found: the raw embedding of the face
// photo; keypoints, face box and output size from the pose image when there is one (else from the
// resized face photo); draw_kps on a canvas of that size; the face box as the control mask
// ("enhance face region"); and the extra ControlNets' maps computed from the same picture and
// resized to the output size with PIL's default (bicubic).
import { EngineError } from '../errors.js';
import { cannyControlImage } from '../control/canny.js';
import { drawKps } from '../face/draw-kps.js';
import type { Box, Keypoints, RgbImage } from '../face/types.js';
import type { ImageU8, InstantIdRunOptions } from './instantid.js';

/** A face found in a picture, in that picture's pixels. */
export interface FoundFace {
  box: Box;
  kps: Keypoints;
}

/** Extra control maps the engine computes itself (openpose / depth come with their preprocessors). */
export type ControlMapKind = 'canny';

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
}

export type InstantIdInputs = Pick<InstantIdRunOptions, 'faceEmbedding' | 'kpsImage' | 'controlImages' | 'controlMask' | 'width' | 'height'>;

export function prepareInstantIdInputs(r: InstantIdInputsRequest): InstantIdInputs {
  const { picture, face } = r;
  const width = r.width ?? picture.width;
  const height = r.height ?? picture.height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 8 || height < 8) {
    throw new EngineError('bad_request', `output size ${width}×${height} is not valid`);
  }
  const sx = width / picture.width;
  const sy = height / picture.height;
  const kps = face.kps.map(([x, y]) => [x * sx, y * sy] as const);
  const kpsImage: ImageU8 = { data: drawKps(width, height, kps), width, height, channels: 3 };
  const controlImages = (r.controlMaps ?? []).map((kind): ImageU8 => {
    if (kind !== 'canny') throw new EngineError('bad_request', `no preprocessor for ${String(kind)} control maps yet`);
    const data = cannyControlImage(picture.data, picture.width, picture.height, 100, 200, { outWidth: width, outHeight: height });
    return { data, width, height, channels: 3 };
  });
  const [x1, y1, x2, y2] = face.box;
  return {
    faceEmbedding: r.embedding,
    kpsImage,
    controlImages,
    width,
    height,
    ...(r.enhanceFaceRegion ?? true ? { controlMask: { box: [x1 * sx, y1 * sy, x2 * sx, y2 * sy] as const } } : {}),
  };
}
