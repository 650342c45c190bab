// InstantID's resize_img (infer.py, gradio_demo/app.py; instantid.md §4): the face or pose photo is
// scaled so its SHORT side is min_side, then so its LONG side is max_side (small photos are upscaled),
// and finally squeezed (not cropped) to multiples of 64. Both resizes are PIL's, on the previous result,
// with Python's round-half-to-even in every size computation. The result's size is the generation size.
import { pilResize, type ResampleFilter } from './resample.js';

/** Python 3's round() of a float: nearest integer, exact halves to the even neighbour. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const frac = x - f; // exact for doubles
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface ResizeImgOptions {
  /** Long side after the second scaling. 1280 in app.py / infer.py, 1024 in app-multicontrolnet.py and the HF Space. */
  maxSide?: number;
  /** Short side after the first scaling. 1024 in every InstantID script. */
  minSide?: number;
  /** Both sides are floored to a multiple of this. 64. */
  base?: number;
  /** PIL filter of both resizes. InstantID passes Image.BILINEAR. */
  filter?: ResampleFilter;
  /** Centre the result on a white maxSide² canvas (unused by the demos). */
  padToMaxSide?: boolean;
  /** Skip the computation and resize straight to this size (resize_img's `size` argument). */
  size?: { width: number; height: number };
}

export interface ResizePlan {
  /** The intermediate size the original is first resized to (= final when no snapping was needed). */
  scaled: { width: number; height: number };
  /** The final image size (multiples of `base`). */
  width: number;
  height: number;
}

function checkSize(width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: bad size ${width}×${height}`);
  }
}

/** The sizes resize_img produces for a width×height image, without touching pixels. */
export function resizeImgPlan(width: number, height: number, opts: ResizeImgOptions = {}): ResizePlan {
  checkSize(width, height, 'resizeImg');
  if (opts.size) {
    checkSize(opts.size.width, opts.size.height, 'resizeImg size');
    return { scaled: { width, height }, width: opts.size.width, height: opts.size.height };
  }
  const maxSide = opts.maxSide ?? 1280;
  const minSide = opts.minSide ?? 1024;
  const base = opts.base ?? 64;
  const r1 = minSide / Math.min(height, width);
  const w1 = pyRound(r1 * width);
  const h1 = pyRound(r1 * height);
  const r2 = maxSide / Math.max(h1, w1);
  const w2 = pyRound(r2 * w1);
  const h2 = pyRound(r2 * h1);
  const W = Math.floor(w2 / base) * base;
  const H = Math.floor(h2 / base) * base;
  if (W < 1 || H < 1) {
    // Python would hand PIL a zero size and fail; say which input did it.
    throw new RangeError(
      `resizeImg: a ${width}×${height} image becomes ${w2}×${h2}, under ${base} px on one side: its aspect ratio is too extreme`,
    );
  }
  return { scaled: { width: w2, height: h2 }, width: W, height: H };
}

export interface ResizedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** resize_img on an HWC RGB uint8 image. */
export function resizeImg(rgb: Uint8Array, width: number, height: number, opts: ResizeImgOptions = {}): ResizedImage {
  if (rgb.length !== width * height * 3) throw new RangeError(`resizeImg: ${rgb.length} bytes for ${width}×${height} RGB`);
  const plan = resizeImgPlan(width, height, opts);
  const filter = opts.filter ?? 'bilinear';
  let data = rgb;
  let w = width;
  let h = height;
  if (!opts.size) {
    data = pilResize(data, w, h, 3, plan.scaled.width, plan.scaled.height, filter);
    w = plan.scaled.width;
    h = plan.scaled.height;
  }
  data = pilResize(data, w, h, 3, plan.width, plan.height, filter);
  if (!opts.padToMaxSide) return { data, width: plan.width, height: plan.height };

  const side = opts.maxSide ?? 1280;
  if (plan.width > side || plan.height > side) {
    throw new RangeError(`resizeImg: ${plan.width}×${plan.height} does not fit a ${side}² canvas`);
  }
  const out = new Uint8Array(side * side * 3).fill(255);
  const ox = Math.floor((side - plan.width) / 2);
  const oy = Math.floor((side - plan.height) / 2);
  for (let y = 0; y < plan.height; y++) {
    out.set(data.subarray(y * plan.width * 3, (y + 1) * plan.width * 3), ((oy + y) * side + ox) * 3);
  }
  return { data: out, width: side, height: side };
}

export interface SizeOverride {
  width?: number;
  height?: number;
}

export interface OutputSizeOptions extends ResizeImgOptions {
  /**
   * Overrides are floored to a multiple of this. 64 by default, as resize_img gives. The pipeline itself
   * needs only multiples of 8 (the VAE factor; diffusers rejects others), but SDXL's UNet halves the
   * latent twice and the ControlNet residuals must line up with it, so sizes that are not multiples of
   * 32 are not safe for a fixed-shape graph; 64 keeps every size the demo could produce.
   */
  multiple?: number;
  /** Smallest side accepted for an override (after snapping). Default: one multiple. */
  minSize?: number;
  /** Largest side accepted for an override. Default 4096. */
  maxSize?: number;
}

/**
 * The generation size for a face (or pose) photo of width×height: resize_img's size, or the user's
 * width/height override snapped down to `multiple`. With one side overridden the other follows the
 * aspect ratio of resize_img's result (then snapped too), so the control maps are not distorted more
 * than the demo distorts them.
 */
export function outputSizeFor(
  width: number,
  height: number,
  override: SizeOverride = {},
  opts: OutputSizeOptions = {},
): { width: number; height: number } {
  const plan = resizeImgPlan(width, height, opts);
  if (override.width === undefined && override.height === undefined) return { width: plan.width, height: plan.height };
  const multiple = opts.multiple ?? 64;
  const minSize = opts.minSize ?? multiple;
  const maxSize = opts.maxSize ?? 4096;
  for (const [name, v] of [['width', override.width], ['height', override.height]] as const) {
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < minSize || v > maxSize) {
      throw new RangeError(`${name} ${v} is outside ${minSize}..${maxSize}`);
    }
  }
  const snap = (v: number) => Math.max(multiple, Math.floor(Math.min(v, maxSize) / multiple) * multiple);
  const w = override.width ?? (override.height! * plan.width) / plan.height;
  const h = override.height ?? (override.width! * plan.height) / plan.width;
  return { width: snap(w), height: snap(h) };
}
