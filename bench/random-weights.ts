// Random UNet weights for the engine benchmarks (timing only: the values do not matter, their scale
// does — matrices ±1/√fan_in, norms ≈ 1, biases ≈ 0), fast and seeded per tensor name.
import type { TensorSource } from '../src/engine/nets/sdxl-weights.js';
import type { UnetStepInputs } from '../src/engine/nets/unet-runner.js';

/** n seeded uniform values in offset ± scale (xorshift32). */
export function random(n: number, seed: number, scale: number, offset = 0): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    a[i] = offset + ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return a;
}

/** FNV-1a of a name: each tensor's seed. */
export const hash = (name: string): number => [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);

/** A weight source for these shapes whose tensors are drawn on each read. */
export function randomSource(shapes: Map<string, readonly number[]>): TensorSource {
  const read = (name: string): Float32Array => {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const norm = shape.length === 1 && name.endsWith('.weight');
    return random(n, hash(name), norm ? 0.05 : shape.length === 1 ? 0.02 : 1 / Math.sqrt(fanIn), norm ? 1 : 0);
  };
  return { has: (name) => shapes.has(name), info: (name) => ({ dtype: 'F32', shape: [...shapes.get(name)!] }), read, readFloat32: read };
}

/** One SDXL UNet call's inputs for a CFG pair (batch 2) at res × res, random but seeded. */
export function cfgPairInputs(res: number): UnetStepInputs {
  const h = res / 8;
  return {
    sample: { dtype: 'float32', dims: [2, 4, h, h], data: random(2 * 4 * h * h, 1, 1) },
    timestep: 500,
    encoderHiddenStates: { dtype: 'float32', dims: [2, 77, 2048], data: random(2 * 77 * 2048, 2, 1) },
    textEmbeds: { dtype: 'float32', dims: [2, 1280], data: random(2 * 1280, 3, 1) },
    timeIds: { dtype: 'float32', dims: [2, 6], data: Float32Array.of(res, res, 0, 0, res, res, res, res, 0, 0, res, res) },
  };
}
