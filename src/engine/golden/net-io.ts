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
