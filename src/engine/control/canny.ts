// OpenCV's Canny edge detector (imgproc canny.cpp, 8-bit input, aperture 3) reproduced exactly, and the
// canny control map of InstantID's demo (gradio_demo/controlnet_util.py get_canny_image), which runs
// cv2.Canny(cv2.cvtColor(rgb, COLOR_RGB2BGR), 100, 200) on the COLOUR image: OpenCV does not convert
// to grey, it keeps per pixel the channel with the strongest gradient (first in B, G, R order on a tie),
// so the channel order changes the result (instantid.md §9, goldens/canny/case.json notes).
import { pilResize, type ResampleFilter } from './resample.js';

export type CannyLayout = 'rgb' | 'bgr' | 'gray';

export interface CannyOptions {
  /** Magnitude sqrt(dx²+dy²) instead of |dx|+|dy| (cv2's L2gradient). Default false, as the demo. */
  l2gradient?: boolean;
  /** How `pixels` is laid out. Default 'rgb' (HWC RGB); OpenCV then sees it as BGR after cvtColor. */
  layout?: CannyLayout;
}

/** tan(22.5°) in Q15, the fixed-point slope OpenCV uses to split gradient directions into sectors. */
const TG22 = 13573;

/** Channel offsets in the order OpenCV scans them (B, G, R for colour input): ties go to the first. */
function scanOrder(layout: CannyLayout): number[] {
  if (layout === 'gray') return [0];
  return layout === 'rgb' ? [2, 1, 0] : [0, 1, 2];
}

/**
 * Edge map of an 8-bit image: HW uint8, 255 on edges, 0 elsewhere — cv2.Canny(img, low, high) with
 * apertureSize 3. `pixels` is HWC with the channel order given by opts.layout (RGB by default).
 */
export function canny(
  pixels: Uint8Array,
  width: number,
  height: number,
  low = 100,
  high = 200,
  opts: CannyOptions = {},
): Uint8Array {
  const layout = opts.layout ?? 'rgb';
  const channels = layout === 'gray' ? 1 : 3;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`canny: bad image size ${width}×${height}`);
  }
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`canny: ${pixels.length} bytes for a ${width}×${height} image of ${channels} channel(s)`);
  }
  if (!Number.isFinite(low) || !Number.isFinite(high)) throw new RangeError(`canny: thresholds ${low}, ${high} must be finite`);
  const l2 = opts.l2gradient ?? false;
  let lo = Math.min(low, high);
  let hi = Math.max(low, high);
  if (l2) {
    // OpenCV compares squared magnitudes with squared thresholds, capped so they stay in int range.
    lo = Math.min(32767, lo);
    hi = Math.min(32767, hi);
    if (lo > 0) lo *= lo;
    if (hi > 0) hi *= hi;
  }
  const lowT = Math.floor(lo);
  const highT = Math.floor(hi);

  const { mag, dx, dy } = gradients(pixels, width, height, channels, scanOrder(layout), l2);
  const kept = suppressNonMaxima(mag, dx, dy, width, height, lowT, highT);
  return hysteresis(kept, width, height);
}

/** Stride of the magnitude buffer: one zero column each side, so neighbours outside the image read 0. */
function magIndex(width: number, x: number, y: number): number {
  return (y + 1) * (width + 2) + x + 1;
}

/**
 * 3×3 Sobel per channel with replicated borders (int16 in OpenCV; never overflows for 8-bit input),
 * magnitude per channel, and per pixel the channel with the largest magnitude (strict '>' in scan order).
 * mag is padded by one zero pixel on every side.
 */
function gradients(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  order: number[],
  l2: boolean,
): { mag: Int32Array; dx: Int16Array; dy: Int16Array } {
  const mag = new Int32Array((width + 2) * (height + 2));
  const dx = new Int16Array(width * height);
  const dy = new Int16Array(width * height);
  const at = (x: number, y: number, c: number) => src[(y * width + x) * channels + c]!;
  for (let y = 0; y < height; y++) {
    const yu = y > 0 ? y - 1 : 0;
    const yd = y < height - 1 ? y + 1 : height - 1;
    for (let x = 0; x < width; x++) {
      const xl = x > 0 ? x - 1 : 0;
      const xr = x < width - 1 ? x + 1 : width - 1;
      let best = -1;
      let bestDx = 0;
      let bestDy = 0;
      for (const c of order) {
        const gx =
          at(xr, yu, c) + 2 * at(xr, y, c) + at(xr, yd, c) - (at(xl, yu, c) + 2 * at(xl, y, c) + at(xl, yd, c));
        const gy =
          at(xl, yd, c) + 2 * at(x, yd, c) + at(xr, yd, c) - (at(xl, yu, c) + 2 * at(x, yu, c) + at(xr, yu, c));
        const m = l2 ? gx * gx + gy * gy : Math.abs(gx) + Math.abs(gy);
        if (m > best) {
          best = m;
          bestDx = gx;
          bestDy = gy;
        }
      }
      mag[magIndex(width, x, y)] = best;
      dx[y * width + x] = bestDx;
      dy[y * width + x] = bestDy;
    }
  }
  return { mag, dx, dy };
}

const NOT_EDGE = 0;
const CANDIDATE = 1;
const SEED = 2;

/**
 * Non-maximum suppression along the gradient, quantised to four directions with OpenCV's fixed-point
 * test. The asymmetric comparisons (strict on one side, '>=' on the other) break plateaus as OpenCV
 * does. Returns per pixel NOT_EDGE, CANDIDATE (kept, above low) or SEED (kept, above high).
 */
function suppressNonMaxima(
  mag: Int32Array,
  dx: Int16Array,
  dy: Int16Array,
  width: number,
  height: number,
  low: number,
  high: number,
): Uint8Array {
  const kept = new Uint8Array(width * height);
  const stride = width + 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const mi = magIndex(width, x, y);
      const m = mag[mi]!;
      if (m <= low) continue;
      const gx = dx[y * width + x]!;
      const gy = dy[y * width + x]!;
      const ax = Math.abs(gx);
      const ay = Math.abs(gy) << 15;
      const tg22x = ax * TG22;
      let isMax: boolean;
      if (ay < tg22x) {
        // near-horizontal gradient: compare with left and right
        isMax = m > mag[mi - 1]! && m >= mag[mi + 1]!;
      } else if (ay > tg22x + (ax << 16)) {
        // near-vertical gradient: compare with the rows above and below
        isMax = m > mag[mi - stride]! && m >= mag[mi + stride]!;
      } else {
        // diagonal: the neighbours along the gradient's own diagonal, both strictly smaller
        const s = (gx ^ gy) < 0 ? -1 : 1;
        isMax = m > mag[mi - stride - s]! && m > mag[mi + stride + s]!;
      }
      if (isMax) kept[y * width + x] = m > high ? SEED : CANDIDATE;
    }
  }
  return kept;
}

/** Hysteresis: every kept pixel 8-connected (through kept pixels) to a seed becomes 255. */
function hysteresis(kept: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const stack = new Int32Array(width * height);
  let top = 0;
  for (let i = 0; i < kept.length; i++) {
    if (kept[i] === SEED) {
      out[i] = 255;
      stack[top++] = i;
    }
  }
  while (top > 0) {
    const i = stack[--top]!;
    const x = i % width;
    const y = (i - x) / width;
    for (let ny = Math.max(0, y - 1); ny <= Math.min(height - 1, y + 1); ny++) {
      for (let nx = Math.max(0, x - 1); nx <= Math.min(width - 1, x + 1); nx++) {
        const j = ny * width + nx;
        if (kept[j] !== NOT_EDGE && out[j] === 0) {
          out[j] = 255;
          stack[top++] = j;
        }
      }
    }
  }
  return out;
}

export interface CannyControlOptions extends CannyOptions {
  /** Size the ControlNet works at; the map is resized to it when it differs (PIL's resize). */
  outWidth?: number;
  outHeight?: number;
  /** PIL filter for that resize; the demo's `.resize((width, height))` uses PIL's default, bicubic. */
  filter?: ResampleFilter;
}

/**
 * The canny control image as the ControlNet receives it: the edge map (PIL 'L'), resized to the
 * generation size if needed, then converted to RGB — the edge value replicated to three channels.
 * Returns HWC RGB uint8 of outWidth×outHeight (default: the input size).
 */
export function cannyControlImage(
  rgb: Uint8Array,
  width: number,
  height: number,
  low = 100,
  high = 200,
  opts: CannyControlOptions = {},
): Uint8Array {
  let edges = canny(rgb, width, height, low, high, opts);
  const outW = opts.outWidth ?? width;
  const outH = opts.outHeight ?? height;
  if (outW !== width || outH !== height) {
    edges = pilResize(edges, width, height, 1, outW, outH, opts.filter ?? 'bicubic');
  }
  const out = new Uint8Array(outW * outH * 3);
  for (let i = 0; i < edges.length; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = edges[i]!;
  return out;
}
