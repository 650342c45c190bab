// The InstantID Space's depth pre/post-processing (get_depth_map with depth_anything.util.transform):
// image/255 in float64 → Resize(lower bound, keep aspect, multiple of 14, cv2 INTER_CUBIC) →
// (x − mean)/std (ImageNet) → float32 CHW; after the net: bilinear back to the photo size,
// min–max to 0..255 in float32, truncation to uint8.
import { cvResizeCubicF64, torchBilinearPlane } from './interpolate.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** np.round: half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Resize's constrain_to_multiple_of with min_val = the lower bound. */
function constrain(x: number, multiple: number, min: number): number {
  let y = roundHalfEven(x / multiple) * multiple;
  if (y < min) y = Math.ceil(x / multiple) * multiple;
  return y;
}

/** The network input size for a (height, width) photo: both sides ≥ lowerBound, aspect kept, multiples of `multiple`. */
export function depthInputSize(height: number, width: number, lowerBound = 518, multiple = 14): { height: number; width: number } {
  let sh = lowerBound / height;
  let sw = lowerBound / width;
  if (sw > sh) sh = sw;
  else sw = sh;
  return { height: constrain(sh * height, multiple, lowerBound), width: constrain(sw * width, multiple, lowerBound) };
}

export interface PixelValues {
  /** [1, 3, H, W] float32. */
  data: Float32Array;
  height: number;
  width: number;
}

/** RGB uint8 HWC → the network's [1, 3, H, W] float32 input, sized by depthInputSize unless `size` is given. */
export function depthPixelValues(
  rgb: Uint8Array, width: number, height: number,
  options: { lowerBound?: number; multiple?: number; size?: { height: number; width: number } } = {},
): PixelValues {
  if (rgb.length !== width * height * 3) throw new Error(`depth input: ${rgb.length} bytes for a ${width}×${height} RGB image`);
  const size = options.size ?? depthInputSize(height, width, options.lowerBound, options.multiple);
  const img = new Float64Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) img[i] = rgb[i]! / 255;
  const resized = cvResizeCubicF64(img, height, width, 3, size.height, size.width);
  const n = size.height * size.width;
  const data = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) data[c * n + i] = (resized[i * 3 + c]! - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
  }
  return { data, height: size.height, width: size.width };
}

export interface DepthPost {
  /** The depth resized to the photo, float32 [height, width], before min–max. */
  resized: Float32Array;
  min: number;
  max: number;
  /** The 8-bit depth map (truncated, not rounded), [height, width]. */
  uint8: Uint8Array;
}

/** predicted_depth [H', W'] → the photo-sized 8-bit map the Space feeds the ControlNet. A flat depth gives an all-zero map. */
export function depthToUint8(predicted: Float32Array, predH: number, predW: number, height: number, width: number): DepthPost {
  const f = Math.fround;
  const resized = torchBilinearPlane(predicted, predH, predW, height, width);
  let min = Infinity;
  let max = -Infinity;
  for (const v of resized) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = f(max - min);
  const uint8 = new Uint8Array(resized.length);
  if (range > 0) {
    for (let i = 0; i < resized.length; i++) {
      const v = f(f(f(resized[i]! - min) / range) * 255);
      uint8[i] = Math.min(255, Math.max(0, Math.trunc(v)));
    }
  }
  return { resized, min, max, uint8 };
}
