// cv2.resize(img, (w, h)) with its default INTER_LINEAR on an 8-bit 3-channel image, bit for bit.
// SCRFD sees the photo through this resize, so matching OpenCV's fixed-point arithmetic (rather
// than any bilinear) keeps detector scores and boxes on insightface's numbers.
//
// What OpenCV does (imgproc/src/resize.cpp, the path for CV_8U + INTER_LINEAR):
// - same size: a copy;
// - exactly half the size in both axes: INTER_AREA's fast 2×2 mean, (a + b + c + d + 2) >> 2;
// - otherwise separable bilinear, half-pixel centres, source coordinate computed in float32,
//   weights rounded to 11 bits (×2048) per tap, the horizontal pass in int32, the vertical pass as
//   (((b0·(h0 >> 4)) >> 16) + ((b1·(h1 >> 4)) >> 16) + 2) >> 2; edge columns clamp with the weight
//   moved to the edge tap, edge rows clamp (both taps on the edge row).
import { assertRgbImage, type RgbImage } from './types.js';

const COEF_SCALE = 2048; // INTER_RESIZE_COEF_SCALE

/** cvRound on a float: round half to even, as lrintf does. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

interface Taps {
  /** First source index (already clamped). */
  index: Int32Array;
  /** Second source index (clamped). */
  next: Int32Array;
  w0: Int32Array;
  w1: Int32Array;
}

/** One axis' taps; `clampWeights` is OpenCV's x-axis rule (weight moved to the edge tap). */
function taps(srcSize: number, dstSize: number, clampWeights: boolean): Taps {
  const scale = 1 / (dstSize / srcSize); // OpenCV keeps inv_scale and inverts it
  const t: Taps = {
    index: new Int32Array(dstSize), next: new Int32Array(dstSize), w0: new Int32Array(dstSize), w1: new Int32Array(dstSize),
  };
  for (let d = 0; d < dstSize; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampWeights) {
      if (s < 0) { f = 0; s = 0; }
      if (s >= srcSize - 1) { f = 0; s = srcSize - 1; }
    }
    t.index[d] = Math.min(Math.max(s, 0), srcSize - 1);
    t.next[d] = Math.min(Math.max(s + 1, 0), srcSize - 1);
    t.w0[d] = roundEven(Math.fround(1 - f) * COEF_SCALE);
    t.w1[d] = roundEven(f * COEF_SCALE);
  }
  return t;
}

function halve(src: RgbImage, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const stride = src.width * 3;
  for (let y = 0; y < height; y++) {
    const r0 = 2 * y * stride;
    const r1 = r0 + stride;
    for (let x = 0; x < width; x++) {
      const s = 6 * x;
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const d = src.data;
        out[o + c] = (d[r0 + s + c]! + d[r0 + s + 3 + c]! + d[r1 + s + c]! + d[r1 + s + 3 + c]! + 2) >> 2;
      }
    }
  }
  return { data: out, width, height };
}

/** cv2.resize(src, (width, height)) with INTER_LINEAR, for 8-bit RGB (channel order is irrelevant). */
export function resizeBilinearCv(src: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(src, 'resize source');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize: bad target size ${width}×${height}`);
  }
  if (width === src.width && height === src.height) return { data: src.data.slice(), width, height };
  if (src.width === 2 * width && src.height === 2 * height) return halve(src, width, height);

  const xt = taps(src.width, width, true);
  const yt = taps(src.height, height, false);
  const rowLen = width * 3;
  // Horizontal pass per source row, computed once per row that some output row needs.
  const cache = new Map<number, Int32Array>();
  const horizontal = (sy: number): Int32Array => {
    let row = cache.get(sy);
    if (row) return row;
    row = new Int32Array(rowLen);
    const base = sy * src.width * 3;
    for (let x = 0; x < width; x++) {
      const i0 = base + xt.index[x]! * 3;
      const i1 = base + xt.next[x]! * 3;
      const a0 = xt.w0[x]!;
      const a1 = xt.w1[x]!;
      for (let c = 0; c < 3; c++) row[x * 3 + c] = src.data[i0 + c]! * a0 + src.data[i1 + c]! * a1;
    }
    // Output rows walk down the source monotonically: rows above the current pair are done with.
    for (const k of cache.keys()) if (k < sy - 1) cache.delete(k);
    cache.set(sy, row);
    return row;
  };

  const out = new Uint8Array(rowLen * height);
  for (let y = 0; y < height; y++) {
    const h0 = horizontal(yt.index[y]!);
    const h1 = horizontal(yt.next[y]!);
    const b0 = yt.w0[y]!;
    const b1 = yt.w1[y]!;
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      out[o + i] = (((b0 * (h0[i]! >> 4)) >> 16) + ((b1 * (h1[i]! >> 4)) >> 16) + 2) >> 2;
    }
  }
  return { data: out, width, height };
}
