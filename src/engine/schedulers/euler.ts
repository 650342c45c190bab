/**
 * Euler sampling in sigma space (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
 * Generative Models", Algorithm 2), as diffusers 0.30.3 `EulerDiscreteScheduler` — SDXL's default.
 * The model sees x / sqrt(σ² + 1); with x0 its denoised estimate and d = (x - x0) / σ̂ the slope,
 *
 *   σ̂ = σ_i (1 + γ),  x ← x + sqrt(σ̂² - σ_i²) · s_noise · z  (churn, only when γ > 0)
 *   x_next = x + d · (σ_{i+1} - σ̂)
 *
 * Like diffusers, step() draws its noise z on every call when given a generator (even with γ = 0), so a
 * shared generator advances exactly as in the reference pipeline.
 */
import {
  addNoiseAtSigma,
  alphasCumprod,
  checkSameLength,
  drawNoise,
  floatTimesteps,
  indexForTimestep,
  interpAtIndex,
  karrasSigmas,
  logF32,
  makeBetas,
  requireTimesteps,
  rescaleZeroTerminalSnr,
  scaleBySigma,
  sigmaToT,
  sigmasFromAlphasCumprod,
  torchLinspaceF32,
} from './common.js';
import {
  BETA_PARAMS,
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  resolveConfig,
  type ConfigOf,
  type ConfigSpec,
} from './config.js';
import type { Scheduler, StepOptions } from './types.js';

const NAME = 'EulerDiscreteScheduler';
const f32 = Math.fround;

/** Constructor arguments in diffusers' order, with its defaults. */
export const EULER_CONFIG = {
  ...BETA_PARAMS,
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  interpolation_type: { type: 'string', default: 'linear', choices: ['linear', 'log_linear'] },
  use_karras_sigmas: { type: 'boolean', default: false },
  sigma_min: { type: 'number?', default: null },
  sigma_max: { type: 'number?', default: null },
  timestep_spacing: { type: 'string', default: 'linspace', choices: TIMESTEP_SPACINGS },
  timestep_type: { type: 'string', default: 'discrete', choices: ['discrete', 'continuous'] },
  steps_offset: { type: 'int', default: 0 },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
  final_sigmas_type: { type: 'string', default: 'zero', choices: ['zero', 'sigma_min'] },
} satisfies ConfigSpec;

export type EulerConfig = ConfigOf<typeof EULER_CONFIG>;

export class EulerDiscreteScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  timesteps: readonly number[];
  sigmas: Float32Array;
  numInferenceSteps: number | undefined;
  private readonly c: EulerConfig;
  /** σ(t) of the training schedule (ascending in t) and its log, float32. */
  private readonly trainSigmas: Float32Array;
  private readonly logSigmas: Float32Array;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, EULER_CONFIG, config);
    this.c = values;
    this.config = record;
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    // Zero terminal SNR would make σ infinite at the last step: use float16's smallest subnormal instead.
    if (values.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.logSigmas = logF32(this.trainSigmas);
    // Before setTimesteps: every training step, as diffusers' __init__.
    const n = values.num_train_timesteps;
    this.sigmas = Float32Array.from([...this.trainSigmas].reverse().concat(0));
    this.timesteps = this.continuousTimesteps()
      ? [...this.sigmas.subarray(0, n)].map((s) => f32(0.25 * f32(Math.log(s))))
      : Array.from({ length: n }, (_, i) => n - 1 - i);
  }

  /** sigma_max for "linspace"/"trailing" spacings, sqrt(sigma_max² + 1) for "leading" (float32). */
  get initNoiseSigma(): number {
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    return this.c.timestep_spacing === 'linspace' || this.c.timestep_spacing === 'trailing' ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    let timesteps = floatTimesteps(NAME, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    let sigmas: number[];
    if (c.interpolation_type === 'linear') {
      sigmas = interpAtIndex(timesteps, this.trainSigmas);
    } else {
      // log_linear: sigmas evenly spaced in log from the table's largest to its smallest. diffusers 0.30
      // makes n + 1 of them (plus the final sigma), one more than the timesteps: reproduced as is.
      const logMax = f32(Math.log(this.trainSigmas[this.trainSigmas.length - 1]!));
      const logMin = f32(Math.log(this.trainSigmas[0]!));
      sigmas = [...torchLinspaceF32(logMax, logMin, numInferenceSteps + 1)].map((v) => f32(Math.exp(v)));
    }
    if (c.use_karras_sigmas) {
      sigmas = karrasSigmas(c.sigma_min ?? sigmas[sigmas.length - 1]!, c.sigma_max ?? sigmas[0]!, numInferenceSteps);
      timesteps = sigmas.map((s) => f32(sigmaToT(s, this.logSigmas)));
    }
    const a0 = this.alphasCumprod[0]!;
    const last = c.final_sigmas_type === 'sigma_min' ? Math.sqrt(f32(f32(1 - a0) / a0)) : 0;
    this.sigmas = Float32Array.from([...sigmas, last]);
    this.timesteps = this.continuousTimesteps()
      ? [...this.sigmas.subarray(0, -1)].map((s) => f32(0.25 * f32(Math.log(s))))
      : timesteps;
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
    const sigma = this.sigmas[i]!;
    const sChurn = options.sChurn ?? 0;
    const sTmin = options.sTmin ?? 0;
    const sTmax = options.sTmax ?? Infinity;
    const sNoise = options.sNoise ?? 1;
    const gamma = sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / (this.sigmas.length - 1), 2 ** 0.5 - 1) : 0;
    const len = sample.length;
    const noise = options.generator || gamma > 0 ? drawNoise(NAME, options.generator, options.shape, len) : undefined;
    const sigmaHat = f32(sigma * (gamma + 1));

    let x = sample;
    if (gamma > 0) {
      const churn = f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))));
      x = sample.map((v, j) => v + noise![j]! * sNoise * churn);
    }

    const vScale = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
    const vSkip = f32(f32(sigma * sigma) + 1);
    const dt = f32(this.sigmas[i + 1]! - sigmaHat);
    const prev = new Float32Array(len);
    for (let j = 0; j < len; j++) {
      const s = x[j]!;
      const m = modelOutput[j]!;
      const x0 = this.c.prediction_type === 'epsilon' ? s - sigmaHat * m
        : this.c.prediction_type === 'v_prediction' ? m * vScale + s / vSkip
          : m;
      const derivative = (s - x0) / sigmaHat;
      prev[j] = s + derivative * dt;
    }
    this.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(NAME, this.sigmas, this.timesteps, original, noise, timestep);
  }

  /** EDM-style v-prediction models take c_noise = log(σ)/4 as their timestep. */
  private continuousTimesteps(): boolean {
    return this.c.timestep_type === 'continuous' && this.c.prediction_type === 'v_prediction';
  }
}
