// The three resamplings Depth Anything's pre/post-processing and Dinov2 use, on the host:
// - torch F.interpolate(mode='bicubic', align_corners=False) of the position table (A = −0.75, taps
//   clamped at the edges, source coordinate not clamped), by output size or by scale factor;
// - cv2.resize(INTER_CUBIC) of a float64 image (the Space's Resize step);
// - torch F.interpolate(mode='bilinear', align_corners=False) of float32 depth back to the photo size.

/** torch's cubic convolution weights for fractional offset t (A = −0.75). */
function torchCubic(t: number): [number, number, number, number] {
  const A = -0.75;
  const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
}

interface AxisTaps { index: Int32Array; weight: Float64Array } // 4 per output

function torchCubicAxis(inSize: number, outSize: number, scale: number): AxisTaps {
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const real = Math.fround(Math.fround(scale * (o + 0.5)) - 0.5);
    const i0 = Math.floor(real);
    const w = torchCubic(Math.fround(real - i0));
    for (let k = 0; k < 4; k++) {
      index[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      weight[o * 4 + k] = Math.fround(w[k]!);
    }
  }
  return { index, weight };
}

/**
 * Bicubic resize of [C, inH, inW] float32 planes to [C, outH, outW]. `scale` is the per-axis factor
 * when the caller passed scale_factor (torch then maps with 1/scale_factor), else in/out is used.
 */
export function torchBicubic(
  src: Float32Array, channels: number, inH: number, inW: number, outH: number, outW: number,
  scaleFactor?: readonly [number, number],
): Float32Array {
  const sh = scaleFactor ? Math.fround(1 / scaleFactor[0]) : Math.fround(inH / outH);
  const sw = scaleFactor ? Math.fround(1 / scaleFactor[1]) : Math.fround(inW / outW);
  const ty = torchCubicAxis(inH, outH, sh);
  const tx = torchCubicAxis(inW, outW, sw);
  const out = new Float32Array(channels * outH * outW);
  for (let c = 0; c < channels; c++) {
    const plane = c * inH * inW;
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        let acc = 0;
        for (let j = 0; j < 4; j++) {
          const row = plane + ty.index[y * 4 + j]! * inW;
          let r = 0;
          for (let i = 0; i < 4; i++) r += tx.weight[x * 4 + i]! * src[row + tx.index[x * 4 + i]!]!;
          acc += ty.weight[y * 4 + j]! * r;
        }
        out[(c * outH + y) * outW + x] = acc;
      }
    }
  }
  return out;
}

/** OpenCV's interpolateCubic (A = −0.75), in float32 as OpenCV computes it. */
function cvCubic(x: number): [number, number, number, number] {
  const f = Math.fround;
  const A = -0.75;
  const x1 = f(x + 1);
  const c0 = f(f(f(f(f(A * x1) - 5 * A) * x1) + 8 * A) * x1 - 4 * A);
  const c1 = f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1);
  const y = f(1 - x);
  const c2 = f(f(f(f(f((A + 2) * y) - (A + 3)) * y) * y) + 1);
  const c3 = f(f(f(1 - c0) - c1) - c2);
  return [c0, c1, c2, c3];
}

function cvCubicAxis(inSize: number, outSize: number): AxisTaps {
  const scale = 1 / (outSize / inSize);
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const fx = Math.fround((o + 0.5) * scale - 0.5);
    const s = Math.floor(fx);
    const w = cvCubic(Math.fround(fx - s));
    for (let k = 0; k < 4; k++) {
      index[o * 4 + k] = Math.min(Math.max(s - 1 + k, 0), inSize - 1);
      weight[o * 4 + k] = w[k]!;
    }
  }
  return { index, weight };
}

/**
 * cv2.resize(img, (outW, outH), interpolation=INTER_CUBIC) of an interleaved float64 HWC image:
 * float32 weights, double sums, the horizontal pass first, edges replicated. The same size is a copy.
 */
export function cvResizeCubicF64(src: Float64Array, inH: number, inW: number, channels: number, outH: number, outW: number): Float64Array {
  if (inH === outH && inW === outW) return src.slice();
  const tx = cvCubicAxis(inW, outW);
  const ty = cvCubicAxis(inH, outH);
  const rows = new Float64Array(inH * outW * channels); // horizontal pass of every source row
  for (let y = 0; y < inH; y++) {
    const sRow = y * inW * channels;
    const dRow = y * outW * channels;
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < channels; c++) {
        let v = 0;
        for (let k = 0; k < 4; k++) v += src[sRow + tx.index[x * 4 + k]! * channels + c]! * tx.weight[x * 4 + k]!;
        rows[dRow + x * channels + c] = v;
      }
    }
  }
  const out = new Float64Array(outH * outW * channels);
  const stride = outW * channels;
  for (let y = 0; y < outH; y++) {
    const r0 = ty.index[y * 4]! * stride, r1 = ty.index[y * 4 + 1]! * stride;
    const r2 = ty.index[y * 4 + 2]! * stride, r3 = ty.index[y * 4 + 3]! * stride;
    const b0 = ty.weight[y * 4]!, b1 = ty.weight[y * 4 + 1]!, b2 = ty.weight[y * 4 + 2]!, b3 = ty.weight[y * 4 + 3]!;
    const d = y * stride;
    for (let i = 0; i < stride; i++) out[d + i] = rows[r0 + i]! * b0 + rows[r1 + i]! * b1 + rows[r2 + i]! * b2 + rows[r3 + i]! * b3;
  }
  return out;
}

/** torch F.interpolate(bilinear, align_corners=False) of one float32 [inH, inW] plane, float32 arithmetic. */
export function torchBilinearPlane(src: Float32Array, inH: number, inW: number, outH: number, outW: number): Float32Array {
  const f = Math.fround;
  const axis = (inSize: number, outSize: number) => {
    const scale = f(inSize / outSize);
    const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize);
    const l0 = new Float32Array(outSize), l1 = new Float32Array(outSize);
    for (let o = 0; o < outSize; o++) {
      const real = Math.max(f(f(scale * f(o + 0.5)) - 0.5), 0);
      const a = Math.min(Math.floor(real), inSize - 1);
      i0[o] = a;
      i1[o] = a < inSize - 1 ? a + 1 : a;
      l1[o] = f(real - a);
      l0[o] = f(1 - l1[o]!);
    }
    return { i0, i1, l0, l1 };
  };
  const ay = axis(inH, outH);
  const ax = axis(inW, outW);
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const r0 = ay.i0[y]! * inW, r1 = ay.i1[y]! * inW;
    const h0 = ay.l0[y]!, h1 = ay.l1[y]!;
    for (let x = 0; x < outW; x++) {
      const c0 = ax.i0[x]!, c1 = ax.i1[x]!;
      const w0 = ax.l0[x]!, w1 = ax.l1[x]!;
      const top = f(f(w0 * src[r0 + c0]!) + f(w1 * src[r0 + c1]!));
      const bottom = f(f(w0 * src[r1 + c0]!) + f(w1 * src[r1 + c1]!));
      out[y * outW + x] = f(f(h0 * top) + f(h1 * bottom));
    }
  }
  return out;
}
