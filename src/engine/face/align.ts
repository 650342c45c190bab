// ArcFace alignment as insightface 0.7.3's norm_crop (utils/face_align.py; instantid.md §2.5):
// a least-squares similarity transform (skimage SimilarityTransform.estimate = Umeyama) from the five
// detected keypoints to the 112×112 ArcFace template, then cv2.warpAffine(img, M, (112, 112),
// borderValue=0) with OpenCV's 8-bit bilinear interpolation (both the current and the pre-4.11 kernel).
import { assertRgbImage, type Affine, type Keypoints, type Point, type RgbImage } from './types.js';

/**
 * insightface's arcface_src for 112×112, stored as float32 there; fround keeps the exact values
 * skimage receives (it widens them to float64).
 */
export const ARCFACE_TEMPLATE_112: Keypoints = (
  [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]] as const
).map(([x, y]) => [Math.fround(x), Math.fround(y)] as const) as unknown as Keypoints;

/** The template for another crop size, as estimate_norm's arcface mode scales it (size % 112 or % 128). */
export function arcfaceTemplate(size: number): Keypoints {
  let ratio: number;
  let dx = 0;
  if (size % 112 === 0) ratio = size / 112;
  else if (size % 128 === 0) {
    ratio = size / 128;
    dx = 8 * ratio;
  } else throw new RangeError(`ArcFace crop size ${size}: must be a multiple of 112 or 128`);
  return ARCFACE_TEMPLATE_112.map(([x, y]) => [x * ratio + dx, y * ratio] as const) as unknown as Keypoints;
}

/**
 * The similarity transform (rotation, uniform scale, translation; never a reflection) that maps
 * `src` onto `dst` in the least-squares sense. In 2-D, Umeyama's SVD solution reduces to this closed
 * form: with centred points s_i, d_i and S = Σ|s_i|², a = Σ s_i·d_i / S and b = Σ s_i×d_i / S give
 * M = [[a, −b, tx], [b, a, ty]]. It equals skimage's result to rounding for any non-degenerate input.
 */
export function estimateSimilarity(src: readonly Point[], dst: readonly Point[]): Affine {
  const n = src.length;
  if (n < 2 || dst.length !== n) throw new RangeError(`similarity fit: need ≥2 matching points, got ${n} and ${dst.length}`);
  let msx = 0, msy = 0, mdx = 0, mdy = 0;
  for (let i = 0; i < n; i++) {
    msx += src[i]![0]; msy += src[i]![1];
    mdx += dst[i]![0]; mdy += dst[i]![1];
  }
  msx /= n; msy /= n; mdx /= n; mdy /= n;
  let norm = 0, dot = 0, cross = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i]![0] - msx, sy = src[i]![1] - msy;
    const dx = dst[i]![0] - mdx, dy = dst[i]![1] - mdy;
    norm += sx * sx + sy * sy;
    dot += sx * dx + sy * dy;
    cross += sx * dy - sy * dx;
  }
  if (!(norm > 0)) throw new RangeError('similarity fit: the source points all coincide');
  const a = dot / norm;
  const b = cross / norm;
  return [
    [a, -b, mdx - (a * msx - b * msy)],
    [b, a, mdy - (b * msx + a * msy)],
  ];
}

/** M mapping the detected keypoints onto the ArcFace template (insightface estimate_norm). */
export function arcfaceMatrix(kps: Keypoints, size = 112): Affine {
  return estimateSimilarity(kps, arcfaceTemplate(size));
}

/** Applies a 2×3 matrix to a point. */
export function applyAffine(m: Affine, [x, y]: Point): Point {
  return [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2]];
}

/** The inverse as warpAffine computes it (same operation order, so the same float64 bits). */
export function invertAffine(m: Affine): Affine {
  const [[m0, m1, m2], [m3, m4, m5]] = m;
  let det = m0 * m4 - m1 * m3;
  det = det !== 0 ? 1 / det : 0;
  const a0 = m4 * det, a1 = m1 * -det, a3 = m3 * -det, a4 = m0 * det;
  return [
    [a0, a1, -a0 * m2 - a1 * m5],
    [a3, a4, -a3 * m2 - a4 * m5],
  ];
}

/** cvRound: round half to even, as lrint does. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Which OpenCV warpAffine to reproduce. OpenCV 4.11 replaced the 8-bit bilinear kernel: 'float32'
 * is the current one (what opencv-python installs today, and what the reference crops in
 * shared/assets/aligned were made with); 'fixed-point' is OpenCV ≤ 4.10's (what InstantID was
 * published with). The two differ by at most 1–2 grey levels on a few percent of the pixels.
 */
export type WarpAlgorithm = 'float32' | 'fixed-point';

export interface WarpOptions {
  algorithm?: WarpAlgorithm;
}

/**
 * cv2.warpAffine(src, m, (width, height)) with INTER_LINEAR and BORDER_CONSTANT 0 on 8-bit RGB.
 * m maps source to destination; each output pixel samples m⁻¹(x, y). A sample whose 2×2
 * neighbourhood lies wholly outside is 0; taps outside the source read as 0.
 */
export function warpAffineBilinear(src: RgbImage, m: Affine, width: number, height: number, options: WarpOptions = {}): RgbImage {
  assertRgbImage(src, 'warp source');
  const out = new Uint8Array(width * height * 3);
  const { data, width: sw, height: sh } = src;
  // The four taps of (sx, sy)…(sx+1, sy+1) for channel c, 0 outside the source.
  const tap = (sx: number, sy: number, c: number): number =>
    sx >= 0 && sx < sw && sy >= 0 && sy < sh ? data[(sy * sw + sx) * 3 + c]! : 0;
  const inv = invertAffine(m);
  if ((options.algorithm ?? 'float32') === 'float32') warpFloat32(inv, width, height, sw, sh, tap, out);
  else warpFixedPoint(inv, width, height, tap, out);
  return { data: out, width, height };
}

type Tap = (sx: number, sy: number, c: number) => number;

/**
 * OpenCV ≥ 4.11 (imgproc warp_kernels.simd.hpp): the inverse matrix in float32, source coordinates
 * by fused multiply-add per row and column, bilinear blend as two fmas along x then one along y,
 * rounded half to even. A double expression rounded once to float32 is that fma here: the exact
 * product of two float32 values fits a double, and at these magnitudes so does the sum.
 */
function warpFloat32(inv: Affine, width: number, height: number, sw: number, sh: number, tap: Tap, out: Uint8Array): void {
  const f = Math.fround;
  const [[m0, m1, m2], [m3, m4, m5]] = inv.map((row) => row.map(f)) as unknown as Affine;
  for (let y = 0; y < height; y++) {
    const rowX = f(y * m1 + m2);
    const rowY = f(y * m4 + m5);
    for (let x = 0; x < width; x++) {
      const fx = f(m0 * x + rowX);
      const fy = f(m3 * x + rowY);
      const ix = Math.floor(fx);
      const iy = Math.floor(fy);
      if (ix + 1 < 0 || ix >= sw || iy + 1 < 0 || iy >= sh) continue; // border value 0
      const ax = f(fx - ix);
      const ay = f(fy - iy);
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const p00 = tap(ix, iy, c), p01 = tap(ix + 1, iy, c);
        const p10 = tap(ix, iy + 1, c), p11 = tap(ix + 1, iy + 1, c);
        const v0 = f(ax * (p01 - p00) + p00);
        const v1 = f(ax * (p11 - p10) + p10);
        const v = f(ay * f(v1 - v0) + v0);
        out[o + c] = Math.min(255, Math.max(0, roundEven(v)));
      }
    }
  }
}

const INTER_BITS = 5; // sub-pixel positions per axis = 32
const INTER_TAB = 1 << INTER_BITS;
const AB_BITS = 10;
const AB_SCALE = 1 << AB_BITS;
const ROUND_DELTA = AB_SCALE / INTER_TAB / 2;
const COEF_BITS = 15; // INTER_REMAP_COEF_BITS
const toShort = (v: number): number => Math.min(32767, Math.max(-32768, v));

/**
 * OpenCV ≤ 4.10 (imgwarp.cpp WarpAffineInvoker + remapBilinear): coordinates in 1/1024 pixel from
 * double products, truncated to 1/32 pixel; weights (32 − fx or fx)·(32 − fy or fy)·32 summing to
 * 2¹⁵, (Σ + 2¹⁴) >> 15.
 */
function warpFixedPoint(inv: Affine, width: number, height: number, tap: Tap, out: Uint8Array): void {
  const [[i0, i1, i2], [i3, i4, i5]] = inv;
  const adelta = new Int32Array(width);
  const bdelta = new Int32Array(width);
  for (let x = 0; x < width; x++) {
    adelta[x] = roundEven(i0 * x * AB_SCALE);
    bdelta[x] = roundEven(i3 * x * AB_SCALE);
  }
  for (let y = 0; y < height; y++) {
    const x0 = roundEven((i1 * y + i2) * AB_SCALE) + ROUND_DELTA;
    const y0 = roundEven((i4 * y + i5) * AB_SCALE) + ROUND_DELTA;
    for (let x = 0; x < width; x++) {
      const X = (x0 + adelta[x]!) >> (AB_BITS - INTER_BITS);
      const Y = (y0 + bdelta[x]!) >> (AB_BITS - INTER_BITS);
      const sx = toShort(X >> INTER_BITS);
      const sy = toShort(Y >> INTER_BITS);
      const fx = X & (INTER_TAB - 1);
      const fy = Y & (INTER_TAB - 1);
      const w00 = (INTER_TAB - fy) * (INTER_TAB - fx) * INTER_TAB;
      const w01 = (INTER_TAB - fy) * fx * INTER_TAB;
      const w10 = fy * (INTER_TAB - fx) * INTER_TAB;
      const w11 = fy * fx * INTER_TAB;
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const v = tap(sx, sy, c) * w00 + tap(sx + 1, sy, c) * w01 + tap(sx, sy + 1, c) * w10 + tap(sx + 1, sy + 1, c) * w11;
        out[o + c] = (v + (1 << (COEF_BITS - 1))) >> COEF_BITS;
      }
    }
  }
}

/** insightface norm_crop: the aligned face crop and the matrix that made it. */
export function normCrop(image: RgbImage, kps: Keypoints, size = 112, options: WarpOptions = {}): { crop: RgbImage; matrix: Affine } {
  const matrix = arcfaceMatrix(kps, size);
  return { crop: warpAffineBilinear(image, matrix, size, size, options), matrix };
}
