/**
 * Ancestral Euler sampling (k-diffusion's `sample_euler_ancestral`), as diffusers 0.30.3
 * `EulerAncestralDiscreteScheduler`. Each step goes deterministically down to σ_down, then adds fresh
 * noise of size σ_up so that the marginal lands on σ_{i+1}:
 *
 *   σ_up   = sqrt(σ_{i+1}² (σ_i² - σ_{i+1}²) / σ_i²),   σ_down = sqrt(σ_{i+1}² - σ_up²)
 *   x_next = x + d · (σ_down - σ_i) + σ_up · z,         d = (x - x0) / σ_i
 *
 * z is drawn from the step's generator on every step (also the last, where σ_up = 0).
 */
import { EngineError } from '../errors.js';
import {
  addNoiseAtSigma,
  alphasCumprod,
  checkSameLength,
  drawNoise,
  floatTimesteps,
  indexForTimestep,
  interpAtIndex,
  makeBetas,
  requireTimesteps,
  rescaleZeroTerminalSnr,
  scaleBySigma,
  sigmasFromAlphasCumprod,
} from './common.js';
import { BETA_PARAMS, TIMESTEP_SPACINGS, resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler, StepOptions } from './types.js';

const NAME = 'EulerAncestralDiscreteScheduler';
const f32 = Math.fround;

/** Constructor arguments in diffusers' order, with its defaults. */
export const EULER_ANCESTRAL_CONFIG = {
  ...BETA_PARAMS,
  // diffusers accepts "sample" here but raises NotImplementedError in step(); rejected up front instead.
  prediction_type: { type: 'string', default: 'epsilon', choices: ['epsilon', 'v_prediction'] },
  timestep_spacing: { type: 'string', default: 'linspace', choices: TIMESTEP_SPACINGS },
  steps_offset: { type: 'int', default: 0 },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
} satisfies ConfigSpec;

export type EulerAncestralConfig = ConfigOf<typeof EULER_ANCESTRAL_CONFIG>;

export class EulerAncestralDiscreteScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  timesteps: readonly number[];
  sigmas: Float32Array;
  numInferenceSteps: number | undefined;
  private readonly c: EulerAncestralConfig;
  /** σ(t) of the training schedule, ascending in t, float32. */
  private readonly trainSigmas: Float32Array;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, EULER_ANCESTRAL_CONFIG, config);
    this.c = values;
    this.config = record;
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    // Zero terminal SNR would make σ infinite at the last step: use float16's smallest subnormal instead.
    if (values.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    const n = values.num_train_timesteps;
    this.sigmas = Float32Array.from([...this.trainSigmas].reverse().concat(0));
    this.timesteps = Array.from({ length: n }, (_, i) => n - 1 - i);
  }

  /** sigma_max for "linspace"/"trailing" spacings, sqrt(sigma_max² + 1) for "leading" (float32). */
  get initNoiseSigma(): number {
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    return this.c.timestep_spacing === 'linspace' || this.c.timestep_spacing === 'trailing' ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    const timesteps = floatTimesteps(NAME, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    this.sigmas = Float32Array.from([...interpAtIndex(timesteps, this.trainSigmas), 0]);
    this.timesteps = timesteps;
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    return scaleBySigma(sample, this.sigmas[this.stepIndex]!);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    const i = this.stepIndex;
    const sigmaFrom = this.sigmas[i]!;
    const sigmaTo = this.sigmas[i + 1]!;
    if (sigmaFrom === 0) throw new EngineError('scheduler_state', `${NAME}: step ${i} starts at sigma 0; follow scheduler.timesteps`);

    const from2 = f32(sigmaFrom * sigmaFrom);
    const to2 = f32(sigmaTo * sigmaTo);
    const sigmaUp = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const sigmaDown = f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigmaFrom);
    const vScale = f32(-sigmaFrom / f32(Math.sqrt(f32(from2 + 1))));
    const vSkip = f32(from2 + 1);

    const len = sample.length;
    const prev = new Float32Array(len);
    for (let j = 0; j < len; j++) {
      const s = sample[j]!;
      const m = modelOutput[j]!;
      const x0 = this.c.prediction_type === 'epsilon' ? s - sigmaFrom * m : m * vScale + s / vSkip;
      prev[j] = s + ((s - x0) / sigmaFrom) * dt;
    }
    const noise = drawNoise(NAME, options.generator, options.shape, len);
    for (let j = 0; j < len; j++) prev[j] = prev[j]! + noise[j]! * sigmaUp;
    this.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(NAME, this.sigmas, this.timesteps, original, noise, timestep);
  }
}
