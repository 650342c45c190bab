// The plain arithmetic around the nets in diffusers' SDXL pipeline, in float32 as torch does it:
// the initial noise, batching for classifier-free guidance, the micro-conditioning ids, the guidance
// mix, and the VAE output → 8-bit RGB → PNG.
import sharp from 'sharp';
import { EngineError } from '../errors.js';
import { PhiloxGenerator } from '../rng/philox.js';
import type { NoiseSource } from '../rng/seed.js';
import { TorchGenerator } from '../rng/torch-cpu.js';

/**
 * 'cpu': torch.Generator('cpu').manual_seed(seed) — diffusers' latents for that seed, bit for bit.
 * 'cuda-philox': A1111's emulation of torch's CUDA generator (GPU latents cannot match bit for bit).
 */
export type NoiseKind = 'cpu' | 'cuda-philox';

export function noiseSource(kind: NoiseKind, seed: bigint): NoiseSource {
  if (kind === 'cpu') return new TorchGenerator(seed);
  if (kind === 'cuda-philox') return new PhiloxGenerator(seed);
  throw new EngineError('bad_request', `unknown noise source ${JSON.stringify(kind)}: use "cpu" or "cuda-philox"`);
}

/** prepare_latents: one randn draw for the whole batch, times the scheduler's init_noise_sigma. */
export function initialLatents(generator: NoiseSource, shape: readonly number[], initNoiseSigma: number): Float32Array {
  const latents = generator.randn(shape);
  const sigma = Math.fround(initNoiseSigma);
  if (sigma !== 1) for (let i = 0; i < latents.length; i++) latents[i] = Math.fround(latents[i]! * sigma);
  return latents;
}

/** `parts` concatenated along the batch, each repeated `times` (torch.cat of .repeat(times, …) rows). */
export function batchRows(parts: readonly Float32Array[], times: number): Float32Array {
  const total = parts.reduce((n, p) => n + p.length, 0) * times;
  const out = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    for (let k = 0; k < times; k++) {
      out.set(p, at);
      at += p.length;
    }
  }
  return out;
}

/** `x` twice along the batch (torch.cat([x] * 2)). */
export function doubled(x: Float32Array): Float32Array {
  const out = new Float32Array(2 * x.length);
  out.set(x, 0);
  out.set(x, x.length);
  return out;
}

/** SDXL's add_time_ids: original size, crop top-left (0, 0), target size — one row per batch item. */
export function timeIds(height: number, width: number, rows: number): Float32Array {
  const row = [height, width, 0, 0, height, width];
  const out = new Float32Array(rows * row.length);
  for (let r = 0; r < rows; r++) out.set(row, r * row.length);
  return out;
}

/** noise = uncond + g·(cond − uncond) over a [uncond; cond] batch, each op rounded to float32. */
export function guidance(noisePred: Float32Array, scale: number): Float32Array {
  const half = noisePred.length / 2;
  const g = Math.fround(scale);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const u = noisePred[i]!;
    out[i] = Math.fround(u + Math.fround(g * Math.fround(noisePred[half + i]! - u)));
  }
  return out;
}

/** latents / scaling_factor, as the pipeline does before vae.decode. */
export function unscaleLatents(latents: Float32Array, scalingFactor: number): Float32Array {
  const s = Math.fround(scalingFactor);
  return latents.map((v) => v / s);
}

/** numpy's round(): halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * One decoded image [3, H, W] in [-1, 1] → interleaved 8-bit RGB, as VaeImageProcessor.postprocess
 * ('pil'): clamp(x / 2 + 0.5, 0, 1), then numpy's (x · 255).round().astype(uint8).
 */
export function toRgb8(chw: Float32Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  if (chw.length !== 3 * plane) throw new EngineError('bad_image', `expected 3×${height}×${width} values, got ${chw.length}`);
  const out = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.min(1, Math.max(0, Math.fround(Math.fround(chw[c * plane + p]! / 2) + 0.5)));
      out[p * 3 + c] = roundHalfEven(Math.fround(v * 255));
    }
  }
  return out;
}

/** Interleaved RGB → PNG bytes (sharp's defaults: deterministic for the same pixels). */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const png = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
