// Shared fixtures for the scheduler specs: SDXL's scheduler_config.json and small helpers.
import type { NoiseSource } from '../../../src/engine/rng/seed.js';
import type { Scheduler } from '../../../src/engine/schedulers/types.js';
import { SDXL_SCHEDULER_CONFIG as SMOKE_SDXL_SCHEDULER_CONFIG } from '../../../src/engine/smoke.js';

/** stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (the smoke set writes the same). */
export const SDXL_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({ ...SMOKE_SDXL_SCHEDULER_CONFIG });

/** The SDXL config under another class name (what `Other.from_config(sdxl)` reads). */
export function sdxl(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...SDXL_SCHEDULER_CONFIG, ...overrides };
}

/** Noise that counts its draws and returns a constant. */
export class CountingNoise implements NoiseSource {
  draws = 0;
  constructor(private readonly value = 1) {}
  randn(shape: readonly number[]): Float32Array {
    this.draws++;
    return new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(this.value);
  }
}

/** A small deterministic latent. */
export function latent(length = 16, scale = 1): Float32Array {
  return Float32Array.from({ length }, (_, i) => scale * Math.sin(i + 1));
}

/** Runs the whole loop with a fixed model output function; returns the final sample. */
export function denoise(
  scheduler: Scheduler,
  steps: number,
  x: Float32Array,
  model: (input: Float32Array, t: number) => Float32Array,
  generator?: NoiseSource,
): Float32Array {
  scheduler.setTimesteps(steps);
  let sample: Float32Array = x.map((v) => v * scheduler.initNoiseSigma);
  for (const t of scheduler.timesteps) {
    sample = scheduler.step(model(scheduler.scaleModelInput(sample, t), t), t, sample, { generator, shape: [sample.length] });
  }
  return sample;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? m : Infinity;
}
