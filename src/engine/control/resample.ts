// PIL's Image.resize for 8-bit images (libImaging/Resample.c): a separable convolution, horizontal pass
// first, each pass rounded to uint8. When shrinking, the filter is stretched by the scale factor
// (support × scale), so it antialiases — unlike OpenCV's 2/4-tap INTER_LINEAR/INTER_CUBIC. Weights are
// computed in double, normalised per output pixel, then turned into 22-bit fixed point, as PIL does.
// Filters with sin/cos (lanczos, hamming) may differ from PIL by a grey level where the C library's
// sin differs from V8's in the last bit and that bit decides a rounding; box/bilinear/bicubic are exact.

export type ResampleFilter = 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

interface Filter {
  support: number;
  weight(x: number): number;
}

const sinc = (x: number): number => {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
};

/** PIL's filter kernels; `support` is the radius at scale 1. */
const FILTERS: Record<ResampleFilter, Filter> = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    weight: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  hamming: {
    support: 1,
    weight: (x) => {
      const a = Math.abs(x);
      if (a === 0) return 1;
      if (a >= 1) return 0;
      const px = a * Math.PI;
      // PIL writes the window's constants as C floats.
      return (Math.sin(px) / px) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(px));
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5; // PIL's (Keys) bicubic, a = -0.5
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;

/** Per output pixel: first input index, tap count and fixed-point weights (row-major, ksize each). */
interface Coefficients {
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc for resampling inSize → outSize over the whole axis. */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; negative values are clamped to 0 right after anyway.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[xx] = xmin;
    count[xx] = Math.max(0, xmax);
  }
  return { ksize, first, count, weights };
}

/** clip8: the 22-bit accumulator back to a byte (floor, then clamp to 0..255). */
function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function resampleHorizontal(
  src: Uint8Array,
  inW: number,
  rows: number,
  channels: number,
  outW: number,
  c: Coefficients,
): Uint8Array {
  const out = new Uint8Array(outW * rows * channels);
  for (let y = 0; y < rows; y++) {
    const rowIn = y * inW * channels;
    const rowOut = y * outW * channels;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.first[xx]!;
      const n = c.count[xx]!;
      const kOff = xx * c.ksize;
      for (let ch = 0; ch < channels; ch++) {
        let acc = 1 << (PRECISION_BITS - 1);
        for (let x = 0; x < n; x++) acc += src[rowIn + (xmin + x) * channels + ch]! * c.weights[kOff + x]!;
        out[rowOut + xx * channels + ch] = clip8(acc);
      }
    }
  }
  return out;
}

function resampleVertical(src: Uint8Array, width: number, channels: number, outH: number, c: Coefficients): Uint8Array {
  const rowLen = width * channels;
  const out = new Uint8Array(outH * rowLen);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.first[yy]!;
    const n = c.count[yy]!;
    const kOff = yy * c.ksize;
    for (let i = 0; i < rowLen; i++) {
      let acc = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < n; y++) acc += src[(ymin + y) * rowLen + i]! * c.weights[kOff + y]!;
      out[yy * rowLen + i] = clip8(acc);
    }
  }
  return out;
}

/**
 * PIL `image.resize((outW, outH), filter)` of an interleaved 8-bit image (1 channel for 'L', 3 for
 * 'RGB'). The same size returns a copy, as PIL does; an axis whose size is unchanged is not filtered.
 */
export function pilResize(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
  filter: ResampleFilter = 'bicubic',
): Uint8Array {
  for (const [name, v] of [['width', width], ['height', height], ['output width', outW], ['output height', outH], ['channels', channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`pilResize: ${name} ${v} must be a positive integer`);
  }
  if (src.length !== width * height * channels) {
    throw new RangeError(`pilResize: ${src.length} bytes for ${width}×${height}×${channels}`);
  }
  const f = FILTERS[filter];
  if (!f) throw new RangeError(`pilResize: unknown filter ${String(filter)}`);
  if (outW === width && outH === height) return src.slice();

  let img = src;
  let rows = height;
  let vert = outH !== height ? coefficients(height, outH, f) : undefined;
  if (outW !== width) {
    const horiz = coefficients(width, outW, f);
    // Only the rows the vertical pass will read are resampled; its indices are shifted to match.
    let firstRow = 0;
    let lastRow = height;
    if (vert) {
      firstRow = vert.first[0]!;
      lastRow = vert.first[outH - 1]! + vert.count[outH - 1]!;
      const shifted = new Int32Array(vert.first.length);
      for (let i = 0; i < shifted.length; i++) shifted[i] = vert.first[i]! - firstRow;
      vert = { ...vert, first: shifted };
    }
    rows = lastRow - firstRow;
    const band = img.subarray(firstRow * width * channels, lastRow * width * channels);
    img = resampleHorizontal(band, width, rows, channels, outW, horiz);
  }
  if (vert) img = resampleVertical(img, outW, channels, outH, vert);
  return img;
}
