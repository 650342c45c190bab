// Shared by the network goldens (UNet, ControlNet, Resampler, IP-Adapter UNet): reading io tensors
// as float32 host tensors, the case's files, and where their compiled models are cached.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../onnx/dtype.js';
import type { GoldenCase } from './case.js';

/** Compiled golden models live here (keyed by weights and config, so reruns are cache hits). */
export function goldenCacheDir(): string {
  return process.env.LIKENESS_GOLDEN_CACHE ?? join(tmpdir(), 'likeness-golden-onnx');
}

/** An io.safetensors tensor as float32 with its dims. */
export function ioF32(c: GoldenCase, name: string): HostTensor<'float32'> {
  const io = c.io();
  const { shape } = io.info(name);
  return { dtype: 'float32', dims: [...shape], data: io.readFloat32(name) };
}

/** The path of a file the case names under `files[key]` (may point into another case: '../unet-sdxl/…'). */
export function caseFile(c: GoldenCase, key: string, fallback?: string): string {
  const files = (c.json.files ?? {}) as Record<string, unknown>;
  const rel = files[key] ?? fallback;
  if (typeof rel !== 'string') throw new Error(`${c.name}: case.json files has no ${key}`);
  return c.file(rel);
}

/** The case's list of input or output names. */
export function caseNames(c: GoldenCase, key: 'inputs' | 'outputs'): string[] {
  const v = c.json[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** The case's first input whose name mentions a mask, if any. */
export function maskInputName(c: GoldenCase): string | undefined {
  return caseNames(c, 'inputs').find((n) => /mask/i.test(n));
}

/**
 * A mask input as the `_full` pipeline uses it, [1, 1, H, W] in [0, 1]: an [H, W] map, channel 0
 * of an [H, W, 3] image, or already [N, 1, H, W]; uint8 values are divided by 255.
 */
export function ioMask(c: GoldenCase, name: string): HostTensor<'float32'> {
  const io = c.io();
  const { dtype, shape } = io.info(name);
  const values = io.readFloat32(name);
  const scale = dtype === 'U8' ? 1 / 255 : 1;
  if (shape.length === 4) return { dtype: 'float32', dims: [...shape], data: values.map((v) => v * scale) };
  const [h, w] = shape as [number, number];
  const c0 = shape.length === 3 ? shape[2]! : 1;
  const data = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) data[i] = values[i * c0]! * scale;
  return { dtype: 'float32', dims: [1, 1, h, w], data };
}
