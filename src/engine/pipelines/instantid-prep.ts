// The host-side arithmetic of InstantID's pipelines (pipeline_stable_diffusion_xl_instantid[_full].py),
// in float32 as torch does it: control images and the face-region mask as the nets take them (and
// the mask maps on IdentityNet's residuals), the ControlNet guidance window, text + face tokens as
// one context, and the VAE output → float [0, 1] NHWC (output_type "np") → 8-bit RGB. CFG batching,
// time ids, the guidance mix, unscaling and PNG come from the SDXL pipeline's denoise-math.ts.
import { EngineError } from '../errors.js';
import { pilResize } from '../control/resample.js';
import type { F32 } from '../nets/net-session.js';
// The SDXL pipeline's denoising arithmetic, shared rather than written twice.
export { batchRows, encodePng, guidance, timeIds, unscaleLatents } from './denoise-math.js';

/** An 8-bit image, interleaved HWC (1 = grey as PIL 'L', 3 = RGB, 4 = RGBA). */
export interface ImageU8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/** The `_full` pipeline's control_mask: an image (channel 0 is read, 255 = inside) or a face box in pixels. */
export type ControlMaskInput = ImageU8 | { box: readonly [x1: number, y1: number, x2: number, y2: number] };

export function f32(dims: readonly number[], data: Float32Array): F32 {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new EngineError('bad_input', `${data.length} values for dims [${dims.join(', ')}]`);
  return { dtype: 'float32', dims: [...dims], data };
}

function checkImage(what: string, img: ImageU8): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || ![1, 3, 4].includes(channels)) {
    throw new EngineError('bad_input', `${what}: ${width}×${height}×${channels} is not an image size (1, 3 or 4 channels)`);
  }
  if (data.length !== width * height * channels) {
    throw new EngineError('bad_input', `${what}: ${data.length} bytes for ${width}×${height}×${channels}`);
  }
}

/** PIL convert('RGB'): grey replicated, alpha dropped. */
export function toRgb(img: ImageU8): Uint8Array {
  if (img.channels === 3) return img.data;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = img.data[p * img.channels + (img.channels === 1 ? 0 : c)]!;
  }
  return out;
}

/**
 * The (height, width) the pipeline runs at: the given ones, else the first control image's, each
 * floored to a multiple of the VAE scale factor (VaeImageProcessor.get_default_height_width).
 */
export function generationSize(first: ImageU8, vaeScale: number, width?: number, height?: number): { width: number; height: number } {
  const floor = (v: number): number => v - (v % vaeScale);
  const w = floor(width ?? first.width);
  const h = floor(height ?? first.height);
  if (w < vaeScale || h < vaeScale) throw new EngineError('bad_input', `the output size ${w}×${h} is too small (at least ${vaeScale}×${vaeScale})`);
  return { width: w, height: h };
}

/**
 * prepare_image for one ControlNet: convert to RGB, resize to width×height with PIL's lanczos
 * (VaeImageProcessor's default) when the size differs, then /255 with no [-1, 1] normalisation.
 * → [3, H, W] float32.
 */
export function controlImageChw(what: string, img: ImageU8, width: number, height: number): Float32Array {
  checkImage(what, img);
  let rgb = toRgb(img);
  if (img.width !== width || img.height !== height) rgb = pilResize(rgb, img.width, img.height, 3, width, height, 'lanczos');
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = Math.fround(rgb[p * 3 + c]! / 255);
  return out;
}

/**
 * The face-region mask as the nets take it: channel 0 / 255 → [1, 1, H, W]. A box becomes 1 on
 * [int(y1):int(y2), int(x1):int(x2)], clamped to the image (Python's negative indices would wrap).
 */
export function controlMaskTensor(mask: ControlMaskInput, width: number, height: number): F32 {
  const out = new Float32Array(width * height);
  if ('box' in mask) {
    const [x1, y1, x2, y2] = mask.box.map((v) => {
      if (!Number.isFinite(v)) throw new EngineError('bad_input', `controlMask box ${mask.box.join(', ')} is not four numbers`);
      return Math.trunc(v);
    }) as [number, number, number, number];
    const cx = (v: number): number => Math.min(width, Math.max(0, v));
    const cy = (v: number): number => Math.min(height, Math.max(0, v));
    for (let y = cy(y1); y < cy(y2); y++) out.fill(1, y * width + cx(x1), y * width + Math.max(cx(x1), cx(x2)));
  } else {
    checkImage('controlMask', mask);
    if (mask.width !== width || mask.height !== height) {
      throw new EngineError('bad_input', `controlMask is ${mask.width}×${mask.height}; it must be the output size ${width}×${height}`);
    }
    for (let p = 0; p < out.length; p++) out[p] = Math.fround(mask.data[p * mask.channels]! / 255);
  }
  return f32([1, 1, height, width], out);
}


/** [B, La, D] and [B, Lb, D] joined along the sequence → [B, La + Lb, D] (UNet context: text, then face tokens). */
export function concatSequence(a: F32, b: F32): F32 {
  const [batch, la, d] = a.dims as [number, number, number];
  const [bb, lb, db] = b.dims as [number, number, number];
  if (bb !== batch || db !== d) throw new EngineError('bad_input', `cannot join [${a.dims.join(', ')}] and [${b.dims.join(', ')}] along the sequence`);
  const out = new Float32Array(batch * (la + lb) * d);
  for (let i = 0; i < batch; i++) {
    out.set(a.data.subarray(i * la * d, (i + 1) * la * d), i * (la + lb) * d);
    out.set(b.data.subarray(i * lb * d, (i + 1) * lb * d), (i * (la + lb) + la) * d);
  }
  return f32([batch, la + lb, d], out);
}


/**
 * Whether ControlNet j acts at step i of n (controlnet_keep): off when i/n < start or (i+1)/n > end.
 * The fractions are compared in float64, as Python does.
 */
export function controlKeep(i: number, n: number, start: number, end: number): boolean {
  return !(i / n < start || (i + 1) / n > end);
}


/** Elementwise sum of same-shaped tensors (MultiControlNet: torch.stack(...).sum(0)), in list order. */
export function sumTensors(ts: readonly F32[]): F32 {
  const out = new Float32Array(ts[0]!.data);
  for (const t of ts.slice(1)) {
    if (t.data.length !== out.length) throw new EngineError('bad_input', 'ControlNet residual shapes differ between nets');
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + t.data[i]!);
  }
  return f32(ts[0]!.dims, out);
}


/** VaeImageProcessor.postprocess(output_type="np"): [n, 3, H, W] in [-1, 1] → clamp(x/2 + 0.5, 0, 1) as [n, H, W, 3]. */
export function toNhwc01(decoded: F32): F32 {
  const [n, c, h, w] = decoded.dims as [number, number, number, number];
  if (c !== 3) throw new EngineError('bad_output', `the VAE decoded ${c} channels, expected 3`);
  const plane = h * w;
  const out = new Float32Array(n * plane * 3);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < 3; ch++) {
      const src = decoded.data.subarray((b * 3 + ch) * plane, (b * 3 + ch + 1) * plane);
      for (let p = 0; p < plane; p++) {
        const v = Math.fround(Math.fround(src[p]! / 2) + 0.5);
        out[(b * plane + p) * 3 + ch] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
  return f32([n, h, w, 3], out);
}

/** numpy's round(): halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One [H, W, 3] image in [0, 1] → 8-bit RGB as numpy_to_pil does: (x·255).round().astype(uint8). */
export function toRgb8(hwc01: Float32Array): Uint8Array {
  const out = new Uint8Array(hwc01.length);
  for (let i = 0; i < out.length; i++) out[i] = roundHalfEven(Math.fround(hwc01[i]! * 255));
  return out;
}


/**
 * The `_full` pipeline's downscale of the face-region mask per IdentityNet down residual (mask j
 * multiplies residual j); the mid residual takes the last (/32) map.
 */
export const CONTROL_MASK_SCALES = [8, 8, 8, 16, 16, 16, 32, 32, 32] as const;

/**
 * torch F.interpolate(x, (oh, ow), mode='bilinear', align_corners=False) of one [h, w] plane:
 * output o samples the input at max(0, (o + 0.5)·(in/out) − 0.5), float32 arithmetic.
 */
export function resizeBilinear(src: Float32Array, h: number, w: number, oh: number, ow: number): Float32Array {
  const axis = (inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; l1: Float32Array } => {
    const scale = Math.fround(inSize / outSize);
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const l1 = new Float32Array(outSize);
    for (let o = 0; o < outSize; o++) {
      const s = Math.max(0, Math.fround(Math.fround(scale * Math.fround(o + 0.5)) - 0.5));
      const base = Math.floor(s);
      i0[o] = base;
      i1[o] = base < inSize - 1 ? base + 1 : base;
      l1[o] = Math.fround(s - base);
    }
    return { i0, i1, l1 };
  };
  const ys = axis(h, oh);
  const xs = axis(w, ow);
  const out = new Float32Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const hl1 = ys.l1[y]!;
    const hl0 = Math.fround(1 - hl1);
    const r0 = ys.i0[y]! * w;
    const r1 = ys.i1[y]! * w;
    for (let x = 0; x < ow; x++) {
      const wl1 = xs.l1[x]!;
      const wl0 = Math.fround(1 - wl1);
      const c0 = xs.i0[x]!;
      const c1 = xs.i1[x]!;
      const top = Math.fround(Math.fround(wl0 * src[r0 + c0]!) + Math.fround(wl1 * src[r0 + c1]!));
      const bottom = Math.fround(Math.fround(wl0 * src[r1 + c0]!) + Math.fround(wl1 * src[r1 + c1]!));
      out[y * ow + x] = Math.fround(Math.fround(hl0 * top) + Math.fround(hl1 * bottom));
    }
  }
  return out;
}

/** The mask maps by downscale s: [1, 1, H // s, W // s] (bilinear, as the `_full` pipeline's step 4.1). */
export function controlMaskMaps(mask: F32): Map<number, F32> {
  const [, , h, w] = mask.dims as [number, number, number, number];
  const maps = new Map<number, F32>();
  for (const s of new Set(CONTROL_MASK_SCALES)) {
    const oh = Math.floor(h / s);
    const ow = Math.floor(w / s);
    if (oh < 1 || ow < 1) throw new EngineError('bad_input', `the control mask (${w}×${h}) is too small for its /${s} map`);
    maps.set(s, f32([1, 1, oh, ow], resizeBilinear(mask.data, h, w, oh, ow)));
  }
  return maps;
}

/** residual [B, C, h, w] × map [1, 1, mh, mw] with torch broadcasting (mh ∈ {h, 1}, mw ∈ {w, 1}). */
function timesMap(r: F32, map: F32): F32 {
  const [b, c, h, w] = r.dims as [number, number, number, number];
  const [, , mh, mw] = map.dims as [number, number, number, number];
  if ((mh !== h && mh !== 1) || (mw !== w && mw !== 1)) {
    throw new EngineError('bad_input', `the face-region mask map ${mh}×${mw} does not fit a ${h}×${w} ControlNet residual (use sizes that are multiples of 64)`);
  }
  const out = new Float32Array(r.data.length);
  for (let p = 0; p < b * c; p++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (p * h + y) * w + x;
        out[i] = Math.fround(r.data[i]! * map.data[(mh === 1 ? 0 : y) * mw + (mw === 1 ? 0 : x)]!);
      }
    }
  }
  return f32(r.dims, out);
}

/** IdentityNet's residuals confined to the face region: down j × map(scale j) (j < 9), mid × the /32 map. */
export function maskResiduals(r: { down: F32[]; mid: F32 }, maps: Map<number, F32>): { down: F32[]; mid: F32 } {
  const last = CONTROL_MASK_SCALES[CONTROL_MASK_SCALES.length - 1];
  return {
    down: r.down.map((d, j) => (j < CONTROL_MASK_SCALES.length ? timesMap(d, maps.get(CONTROL_MASK_SCALES[j]!)!) : d)),
    mid: timesMap(r.mid, maps.get(last)!),
  };
}
