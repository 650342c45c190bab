/**
 * Euler sampling of a rectified-flow model (Esser et al. 2024, "Scaling Rectified Flow Transformers",
 * SD3), as diffusers 0.30.3 `FlowMatchEulerDiscreteScheduler`. The model predicts the velocity
 * v = noise - x0 along x_σ = (1 - σ)·x0 + σ·noise, so one step is
 *
 *   x_next = x + (σ_{i+1} - σ_i) · v,     timestep = σ · num_train_timesteps
 *
 * Sigmas are shifted towards the noisy end by σ' = shift·σ / (1 + (shift - 1)·σ) (or, with dynamic
 * shifting, by the resolution-dependent exp(μ) / (exp(μ) + 1/σ - 1)). As in diffusers 0.30, the static
 * shift is applied once to the training table (which sets sigma_min/max) and again in setTimesteps.
 * There is no input scaling and the initial noise is unscaled (initNoiseSigma = 1).
 */
import { EngineError } from '../errors.js';
import { checkSameLength, checkStepCount, indexForTimestep, linspace, requireTimesteps } from './common.js';
import { resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler } from './types.js';

const NAME = 'FlowMatchEulerDiscreteScheduler';
const f32 = Math.fround;

/** Constructor arguments in diffusers' order, with its defaults. */
export const FLOW_MATCH_EULER_CONFIG = {
  num_train_timesteps: { type: 'int', default: 1000, min: 1 },
  shift: { type: 'number', default: 1.0 },
  use_dynamic_shifting: { type: 'boolean', default: false },
  base_shift: { type: 'number', default: 0.5 },
  max_shift: { type: 'number', default: 1.15 },
  base_image_seq_len: { type: 'int', default: 256 },
  max_image_seq_len: { type: 'int', default: 4096 },
} satisfies ConfigSpec;

export type FlowMatchEulerConfig = ConfigOf<typeof FLOW_MATCH_EULER_CONFIG>;

export class FlowMatchEulerDiscreteScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[];
  sigmas: Float32Array;
  numInferenceSteps: number | undefined;
  private readonly c: FlowMatchEulerConfig;
  private readonly sigmaMin: number;
  private readonly sigmaMax: number;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, FLOW_MATCH_EULER_CONFIG, config);
    this.c = values;
    this.config = record;
    const n = values.num_train_timesteps;
    // Training table in float32: t = n..1, σ = t/n, statically shifted unless the shift is dynamic.
    const shift = f32(values.shift);
    const shiftMinus1 = f32(values.shift - 1);
    const sigmas = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const s = f32(f32(n - i) / n);
      sigmas[i] = values.use_dynamic_shifting ? s : f32(shift * s) / f32(1 + f32(shiftMinus1 * s));
    }
    this.sigmas = sigmas;
    this.timesteps = [...sigmas].map((s) => f32(s * n));
    this.sigmaMin = sigmas[n - 1]!;
    this.sigmaMax = sigmas[0]!;
  }

  /**
   * `mu` is the dynamic shift (required with use_dynamic_shifting): pipelines compute it from the image's
   * token count, linearly from base_shift at base_image_seq_len to max_shift at max_image_seq_len.
   */
  setTimesteps(numInferenceSteps: number, options: { mu?: number } = {}): void {
    const c = this.c;
    checkStepCount(NAME, numInferenceSteps, Infinity);
    if (c.use_dynamic_shifting && options.mu === undefined) {
      throw new EngineError('bad_scheduler_config', `${NAME}: use_dynamic_shifting needs setTimesteps(n, { mu })`);
    }
    const N = c.num_train_timesteps;
    const sigmas = linspace(this.sigmaMax * N, this.sigmaMin * N, numInferenceSteps).map((t) => {
      const s = t / N;
      if (c.use_dynamic_shifting) {
        const e = Math.exp(options.mu!);
        return e / (e + (1 / s - 1));
      }
      return (c.shift * s) / (1 + (c.shift - 1) * s);
    });
    this.sigmas = Float32Array.from([...sigmas, 0]);
    this.timesteps = [...this.sigmas.subarray(0, -1)].map((s) => f32(s * N));
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    const i = this.stepIndex;
    const dt = f32(this.sigmas[i + 1]! - this.sigmas[i]!);
    const prev = new Float32Array(sample.length);
    for (let j = 0; j < prev.length; j++) prev[j] = sample[j]! + dt * modelOutput[j]!;
    this.stepIndex = i + 1;
    return prev;
  }

  /** diffusers' `scale_noise`: the point σ of the way from the clean sample to the noise. */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const sigma = this.sigmas[indexForTimestep(NAME, this.timesteps, timestep)]!;
    const keep = f32(1 - sigma);
    return original.map((x, j) => sigma * noise[j]! + keep * x);
  }
}
