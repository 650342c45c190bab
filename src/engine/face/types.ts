// Shared shapes of the face pipeline. Coordinates are always in the pixels of the image that was
// analysed (x right, y down), as insightface reports them.

/** An 8-bit RGB image, HWC, row-major: what decodeImageRGB returns. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export type Point = readonly [x: number, y: number];

/** [x1, y1, x2, y2]: SCRFD's box, no +1 convention, may reach past the image edges. */
export type Box = readonly [x1: number, y1: number, x2: number, y2: number];

/**
 * The five keypoints in ArcFace order: eye on the image-left, eye on the image-right, nose tip,
 * mouth corner image-left, mouth corner image-right.
 */
export type Keypoints = readonly [Point, Point, Point, Point, Point];

/** One SCRFD detection. */
export interface Detection {
  box: Box;
  /** Sigmoid probability from the detector (0..1). */
  score: number;
  kps: Keypoints;
}

/** A 2×3 affine matrix [[a, b, c], [d, e, f]] mapping (x, y) to (a·x + b·y + c, d·x + e·y + f). */
export type Affine = readonly [readonly [number, number, number], readonly [number, number, number]];

export function boxArea(box: Box): number {
  return (box[2] - box[0]) * (box[3] - box[1]);
}

export function assertRgbImage(image: RgbImage, what = 'image'): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: bad size ${width}×${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new RangeError(`${what}: ${data.length} bytes for ${width}×${height} RGB (expected ${width * height * 3})`);
  }
}
