// cv2.resize(src, (w, h), interpolation=…) for INTER_LINEAR, INTER_AREA and INTER_LANCZOS4, on uint8 or
// float32 images with any number of interleaved channels, following OpenCV's imgproc/src/resize.cpp:
//
// - same size: a copy; INTER_LINEAR at exactly half size in both axes is INTER_AREA's fast path.
// - INTER_AREA with both scales >= 1 is the true area filter: integer scales average scale_x·scale_y
//   pixels (resizeAreaFast_), others weigh each source cell by its overlap (computeResizeAreaTab,
//   float weights, float accumulation). With either scale < 1 OpenCV emulates it with a bilinear
//   filter whose phase is the cell overlap ("area mode"), as here.
// - the separable filters take their phases in float32 from the double scale; uint8 images use 11-bit
//   fixed-point taps (cvRound(c·2048)) and integer sums, float images float taps. Edge pixels repeat.
//   LANCZOS4 (8 taps, interpolateLanczos4) sums in int and shifts by 22 with rounding; LINEAR uses the
//   vectorised row formula (((b0·(h0 >> 4)) >> 16) + ((b1·(h1 >> 4)) >> 16) + 2) >> 2.
// Float results may differ from OpenCV's SIMD summation order by float32 rounding; uint8 results are
// OpenCV's integer arithmetic.

export type CvInterpolation = 'linear' | 'area' | 'lanczos4';

/** An interleaved HWC image (uint8 pixels or float32 values). */
export interface CvImage<T extends Uint8Array | Float32Array = Uint8Array | Float32Array> {
  data: T;
  width: number;
  height: number;
  channels: number;
}

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

/** cvRound: nearest, ties to even. */
function cvRound(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const clampU8 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

function checkImage(img: CvImage, what: string): void {
  const { width, height, channels } = img;
  if (![width, height, channels].every((v) => Number.isInteger(v) && v > 0)) throw new RangeError(`${what}: bad size ${width}×${height}×${channels}`);
  if (img.data.length !== width * height * channels) throw new RangeError(`${what}: ${img.data.length} values for ${width}×${height}×${channels}`);
}

/** cv2.resize(img, (width, height), interpolation). */
export function cvResize<T extends Uint8Array | Float32Array>(img: CvImage<T>, width: number, height: number, interpolation: CvInterpolation): CvImage<T> {
  checkImage(img, 'cvResize source');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`cvResize: bad target size ${width}×${height}`);
  if (width === img.width && height === img.height) return { ...img, data: img.data.slice() as T };
  const invScaleX = width / img.width;
  const invScaleY = height / img.height;
  const scaleX = 1 / invScaleX;
  const scaleY = 1 / invScaleY;
  const iscaleX = Math.round(scaleX);
  const iscaleY = Math.round(scaleY);
  const areaFast = Math.abs(scaleX - iscaleX) < Number.EPSILON && Math.abs(scaleY - iscaleY) < Number.EPSILON;
  let mode = interpolation;
  if (mode === 'linear' && areaFast && iscaleX === 2 && iscaleY === 2) mode = 'area';
  if (mode === 'area' && scaleX >= 1 && scaleY >= 1) {
    return (areaFast ? resizeAreaFast(img, width, height, iscaleX, iscaleY) : resizeArea(img, width, height, scaleX, scaleY)) as CvImage<T>;
  }
  return resizeSeparable(img, width, height, mode, { scaleX, scaleY, invScaleX, invScaleY });
}

/** Integer factors: the mean of each iscaleX × iscaleY block. */
function resizeAreaFast(img: CvImage, width: number, height: number, sx: number, sy: number): CvImage {
  const { channels: cn } = img;
  const u8 = img.data instanceof Uint8Array;
  const out = u8 ? new Uint8Array(width * height * cn) : new Float32Array(width * height * cn);
  const area = sx * sy;
  const scale = Math.fround(1 / area);
  const rowLen = img.width * cn;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < cn; c++) {
        let sum = 0;
        for (let j = 0; j < sy; j++) {
          const row = (y * sy + j) * rowLen;
          for (let i = 0; i < sx; i++) sum += img.data[row + (x * sx + i) * cn + c]!;
        }
        const o = (y * width + x) * cn + c;
        // The 2×2 uint8 case is vectorised in OpenCV as (a + b + c + d + 2) >> 2.
        if (u8) out[o] = area === 4 ? (sum + 2) >> 2 : clampU8(cvRound(Math.fround(sum * scale)));
        else out[o] = Math.fround(sum) * scale;
      }
    }
  }
  return { data: out, width, height, channels: cn };
}

interface AreaTap {
  d: number;
  s: number;
  alpha: number;
}

/** computeResizeAreaTab: which source cells (and how much of each) make every destination cell. */
function areaTaps(ssize: number, dsize: number, scale: number): AreaTap[] {
  const taps: AreaTap[] = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) taps.push({ d: dx, s: sx1 - 1, alpha: Math.fround((sx1 - fsx1) / cellWidth) });
    for (let sx = sx1; sx < sx2; sx++) taps.push({ d: dx, s: sx, alpha: Math.fround(1 / cellWidth) });
    if (fsx2 - sx2 > 1e-3) taps.push({ d: dx, s: sx2, alpha: Math.fround(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth) });
  }
  return taps;
}

/** Non-integer downscale: out = Σ_rows β · Σ_cols α · src, in float32, rounded for uint8. */
function resizeArea(img: CvImage, width: number, height: number, scaleX: number, scaleY: number): CvImage {
  const { channels: cn } = img;
  const xt = areaTaps(img.width, width, scaleX);
  const yt = areaTaps(img.height, height, scaleY);
  const rowLen = width * cn;
  const buf = new Float32Array(rowLen);
  const sum = new Float32Array(rowLen);
  const u8 = img.data instanceof Uint8Array;
  const out = u8 ? new Uint8Array(height * rowLen) : new Float32Array(height * rowLen);
  const flush = (dy: number) => {
    for (let i = 0; i < rowLen; i++) out[dy * rowLen + i] = u8 ? clampU8(cvRound(sum[i]!)) : sum[i]!;
  };
  let prev = yt[0]!.d;
  for (const { d: dy, s: sy, alpha: beta } of yt) {
    buf.fill(0);
    const row = sy * img.width * cn;
    for (const { d: dx, s: sx, alpha } of xt) {
      for (let c = 0; c < cn; c++) buf[dx * cn + c] = buf[dx * cn + c]! + Math.fround(img.data[row + sx * cn + c]! * alpha);
    }
    if (dy !== prev) {
      flush(prev);
      for (let i = 0; i < rowLen; i++) sum[i] = beta * buf[i]!;
      prev = dy;
    } else {
      for (let i = 0; i < rowLen; i++) sum[i] = sum[i]! + Math.fround(beta * buf[i]!);
    }
  }
  flush(prev);
  return { data: out, width, height, channels: cn };
}

/** interpolateLanczos4: the 8 taps at phase x (OpenCV's sin/cos recurrence, float32 results). */
function lanczos4(x: number, out: Float32Array): void {
  const s45 = 0.7071067811865476;
  const cs = [[1, 0], [-s45, -s45], [0, 1], [s45, -s45], [-1, 0], [s45, s45], [0, -1], [-s45, s45]] as const;
  const y0 = -(x + 3) * Math.PI * 0.25;
  const s0 = Math.sin(y0);
  const c0 = Math.cos(y0);
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const y0i = Math.fround(x + 3 - i);
    if (Math.abs(y0i) >= Math.fround(1e-6)) {
      const y = -y0i * Math.PI * 0.25;
      out[i] = (cs[i]![0] * s0 + cs[i]![1] * c0) / (y * y);
    } else {
      out[i] = 1e30;
    }
    sum = Math.fround(sum + out[i]!);
  }
  const inv = Math.fround(1 / sum);
  for (let i = 0; i < 8; i++) out[i] = out[i]! * inv;
}

interface AxisTaps {
  /** First source index of each destination index's taps (may be outside; reads clamp). */
  first: Int32Array;
  /** ksize coefficients per destination index. */
  coef: Float32Array;
}

function axisTaps(ssize: number, dsize: number, scale: number, invScale: number, mode: CvInterpolation, clampEdges: boolean): AxisTaps {
  const ksize = mode === 'lanczos4' ? 8 : 2;
  const half = ksize / 2;
  const first = new Int32Array(dsize);
  const coef = new Float32Array(dsize * ksize);
  const cbuf = new Float32Array(8);
  for (let d = 0; d < dsize; d++) {
    let s: number;
    let f: number;
    if (mode !== 'area') {
      f = Math.fround((d + 0.5) * scale - 0.5);
      s = Math.floor(f);
      f = Math.fround(f - s);
    } else {
      s = Math.floor(d * scale);
      f = Math.fround(d + 1 - (s + 1) * invScale);
      f = f <= 0 ? 0 : Math.fround(f - Math.floor(f));
    }
    if (clampEdges && mode !== 'lanczos4') {
      if (s < half - 1 && s < 0) { f = 0; s = 0; }
      if (s + half >= ssize && s >= ssize - 1) { f = 0; s = ssize - 1; }
    }
    if (mode === 'lanczos4') lanczos4(f, cbuf);
    else { cbuf[0] = Math.fround(1 - f); cbuf[1] = f; }
    first[d] = s - (half - 1);
    for (let k = 0; k < ksize; k++) coef[d * ksize + k] = cbuf[k]!;
  }
  return { first, coef };
}

const clampIndex = (i: number, n: number): number => (i < 0 ? 0 : i >= n ? n - 1 : i);

/** resizeGeneric_: a horizontal pass over every source row, then the vertical pass. */
function resizeSeparable<T extends Uint8Array | Float32Array>(
  img: CvImage<T>, width: number, height: number, mode: CvInterpolation,
  s: { scaleX: number; scaleY: number; invScaleX: number; invScaleY: number },
): CvImage<T> {
  const { channels: cn, width: sw, height: sh } = img;
  const ksize = mode === 'lanczos4' ? 8 : 2;
  const xt = axisTaps(sw, width, s.scaleX, s.invScaleX, mode, true);
  const yt = axisTaps(sh, height, s.scaleY, s.invScaleY, mode, false);
  const u8 = img.data instanceof Uint8Array;
  const rowLen = width * cn;
  const src = img.data;
  // Source offsets of every (destination column, tap), edge pixels repeated.
  const xIndex = new Int32Array(width * ksize);
  for (let x = 0; x < width; x++) for (let k = 0; k < ksize; k++) xIndex[x * ksize + k] = clampIndex(xt.first[x]! + k, sw) * cn;
  const xCoef = u8 ? Int32Array.from(xt.coef, (c) => cvRound(c * COEF_SCALE)) : xt.coef;
  // Horizontal pass: [sh, width·cn], integer sums of 11-bit taps for uint8, float for float.
  const hor = u8 ? new Int32Array(sh * rowLen) : new Float32Array(sh * rowLen);
  if (!u8 && cn === 1) horizontalF32(src as Float32Array, sw, sh, width, ksize, xIndex, xCoef as Float32Array, hor as Float32Array);
  else for (let y = 0; y < sh; y++) {
    const srow = y * sw * cn;
    const drow = y * rowLen;
    for (let x = 0; x < width; x++) {
      const t = x * ksize;
      for (let c = 0; c < cn; c++) {
        let v = 0;
        for (let k = 0; k < ksize; k++) v += src[srow + xIndex[t + k]! + c]! * xCoef[t + k]!;
        hor[drow + x * cn + c] = v;
      }
    }
  }
  const out = (u8 ? new Uint8Array(height * rowLen) : new Float32Array(height * rowLen)) as T;
  const yCoef = u8 ? Int32Array.from(yt.coef, (c) => cvRound(c * COEF_SCALE)) : yt.coef;
  const acc = u8 ? new Float64Array(rowLen) : new Float64Array(rowLen);
  for (let y = 0; y < height; y++) {
    const o = y * rowLen;
    if (u8 && ksize === 2) {
      const r0 = clampIndex(yt.first[y]!, sh) * rowLen;
      const r1 = clampIndex(yt.first[y]! + 1, sh) * rowLen;
      const b0 = yCoef[y * 2]!;
      const b1 = yCoef[y * 2 + 1]!;
      for (let i = 0; i < rowLen; i++) {
        out[o + i] = clampU8((((b0 * (hor[r0 + i]! >> 4)) >> 16) + ((b1 * (hor[r1 + i]! >> 4)) >> 16) + 2) >> 2);
      }
      continue;
    }
    acc.fill(0);
    for (let k = 0; k < ksize; k++) {
      const r = clampIndex(yt.first[y]! + k, sh) * rowLen;
      const b = yCoef[y * ksize + k]!;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + hor[r + i]! * b;
    }
    if (u8) {
      const shift = 1 << (2 * COEF_BITS);
      const half = 1 << (2 * COEF_BITS - 1);
      for (let i = 0; i < rowLen; i++) out[o + i] = clampU8(Math.floor((acc[i]! + half) / shift));
    } else {
      for (let i = 0; i < rowLen; i++) out[o + i] = acc[i]!;
    }
  }
  return { data: out, width, height, channels: cn };
}

/** The horizontal pass of one-channel float images (the openpose maps), kept monomorphic for speed. */
function horizontalF32(src: Float32Array, sw: number, sh: number, width: number, ksize: number, xIndex: Int32Array, xCoef: Float32Array, hor: Float32Array): void {
  for (let y = 0; y < sh; y++) {
    const srow = y * sw;
    const drow = y * width;
    for (let x = 0; x < width; x++) {
      const t = x * ksize;
      let v = 0;
      for (let k = 0; k < ksize; k++) v += src[srow + xIndex[t + k]!]! * xCoef[t + k]!;
      hor[drow + x] = v;
    }
  }
}
