// Shared by the net tests: a compile cache per test run, random weights for any config, reading
// golden io tensors, and comparisons.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { writeSafetensors } from '../../../src/engine/formats/safetensors-write.js';
import type { F32 } from '../../../src/engine/nets/net-session.js';
import type { ShapeMap } from '../../../src/engine/nets/unet-shapes.js';
import { golden } from '../../helpers/paths.js';

/** A fresh compile cache; remove it with the returned function. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic normal draws (Box–Muller over a 32-bit LCG). */
export function gaussian(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
}

/** Random weights like the goldens': norms 1 + N(0, 0.1), biases N(0, 0.05), matrices N(0, clip(1/√fan_in, 0.05, 0.2)). */
export async function writeRandomWeights(path: string, shapes: ShapeMap, seed: number): Promise<void> {
  const rnd = gaussian(seed);
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = shape.length === 1 && /norm/.test(name) && name.endsWith('.weight');
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const sd = shape.length === 1 ? (isNorm ? 0.1 : 0.05) : Math.min(0.2, Math.max(0.05, 1 / Math.sqrt(fanIn)));
    for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + sd * rnd();
    tensors[name] = { dtype: 'F32', shape, data };
  }
  await writeSafetensors(path, tensors);
}

export function randomF32(dims: readonly number[], seed: number, scale = 1): F32 {
  const rnd = gaussian(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims: [...dims], data: Float32Array.from({ length: n }, () => scale * rnd()) };
}

export function caseJson(name: string): Record<string, unknown> {
  return parsePythonJson(readFileSync(join(golden(name), 'case.json'), 'utf8')) as Record<string, unknown>;
}

/** Opens a golden case's io.safetensors; `get` reads float32 (uint8 images → /255 NCHW with `image`). */
export function goldenIo(name: string): { get(tensor: string): F32; image(tensor: string): F32; close(): void } {
  const io = SafetensorsFile.open(join(golden(name), 'io.safetensors'));
  return {
    get(tensor) {
      return { dtype: 'float32', dims: [...io.info(tensor).shape], data: io.readFloat32(tensor) };
    },
    /** HWC or HW uint8 → [1, 3, H, W] in [0, 1] (grey replicated), as diffusers' control image processor. */
    image(tensor) {
      const { shape } = io.info(tensor);
      const [h, w] = shape as [number, number];
      const c = shape[2] ?? 1;
      const src = io.read(tensor) as Uint8Array;
      const out = new Float32Array(3 * h * w);
      for (let ch = 0; ch < 3; ch++) for (let i = 0; i < h * w; i++) out[ch * h * w + i] = src[i * c + (c === 1 ? 0 : ch)]! / 255;
      return { dtype: 'float32', dims: [1, 3, h, w], data: out };
    },
    close: () => io.close(),
  };
}

/** Concatenates tensors along `axis`. */
export function cat(ts: readonly F32[], axis: number): F32 {
  const dims = [...ts[0]!.dims];
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inners = ts.map((t) => t.dims.slice(axis).reduce((a, b) => a * b, 1));
  dims[axis] = ts.reduce((s, t) => s + t.dims[axis]!, 0);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    ts.forEach((t, k) => {
      data.set(t.data.subarray(i * inners[k]!, (i + 1) * inners[k]!), o);
      o += inners[k]!;
    });
  }
  return { dtype: 'float32', dims, data };
}

/** Rows [start, end) of the batch axis. */
export function batchSlice(t: F32, start: number, end: number): F32 {
  const inner = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims: [end - start, ...t.dims.slice(1)], data: t.data.slice(start * inner, end * inner) };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** The goldens' rule: max|a − e| ≤ atol + rtol·max|e|. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 2e-5, rtol = 1e-4): { ok: boolean; err: number; allowed: number } {
  const err = maxAbsDiff(actual, expected);
  const allowed = atol + rtol * maxAbs(expected);
  return { ok: err <= allowed, err, allowed };
}
