/**
 * DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eqs. 6–7 and 15),
 * as diffusers 0.30.3 `DDPMScheduler`. From x_t and the predicted noise:
 *
 *   x0     = (x_t - sqrt(1 - ᾱ_t) · ε) / sqrt(ᾱ_t)
 *   μ      = sqrt(ᾱ_prev) · β_t / (1 - ᾱ_t) · x0 + sqrt(α_t) · (1 - ᾱ_prev) / (1 - ᾱ_t) · x_t
 *   x_prev = μ + σ_t · z    (z drawn at every t > 0, from the step's generator)
 *
 * where α_t = ᾱ_t / ᾱ_prev spans the skipped steps, prev = t - num_train_timesteps // num_inference_steps
 * (diffusers 0.30 uses that stride for every spacing) and ᾱ_prev = 1 past the start.
 */
import { EngineError } from '../errors.js';
import {
  addNoiseAtAlpha,
  alphaAtTimestep,
  alphasCumprod,
  checkSameLength,
  drawNoise,
  integerTimesteps,
  makeBetas,
  rescaleZeroTerminalSnr,
  thresholdSample,
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

const NAME = 'DDPMScheduler';
const f32 = Math.fround;

/**
 * diffusers also accepts "fixed_large_log", but then takes the square root of a log-variance (NaN);
 * it is left out so that choosing it fails loudly instead of producing NaN latents.
 */
const VARIANCE_TYPES = ['fixed_small', 'fixed_small_log', 'fixed_large', 'learned', 'learned_range'] as const;

/** Constructor arguments in diffusers' order, with its defaults. */
export const DDPM_CONFIG = {
  ...BETA_PARAMS,
  variance_type: { type: 'string', default: 'fixed_small', choices: VARIANCE_TYPES },
  clip_sample: { type: 'boolean', default: true },
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  thresholding: { type: 'boolean', default: false },
  dynamic_thresholding_ratio: { type: 'number', default: 0.995 },
  clip_sample_range: { type: 'number', default: 1.0 },
  sample_max_value: { type: 'number', default: 1.0 },
  timestep_spacing: { type: 'string', default: 'leading', choices: TIMESTEP_SPACINGS },
  steps_offset: { type: 'int', default: 0 },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
} satisfies ConfigSpec;

export type DDPMConfig = ConfigOf<typeof DDPM_CONFIG>;

export class DDPMScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  private readonly c: DDPMConfig;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, DDPM_CONFIG, config);
    this.c = values;
    this.config = record;
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    // Before setTimesteps, diffusers walks all training timesteps.
    this.timesteps = Array.from({ length: values.num_train_timesteps }, (_, i) => values.num_train_timesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    this.timesteps = integerTimesteps(NAME, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    this.numInferenceSteps = numInferenceSteps;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutputIn: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    const c = this.c;
    const len = sample.length;
    // Learned-variance models output [mean ε, variance] stacked on the channel axis.
    const learned = c.variance_type === 'learned' || c.variance_type === 'learned_range';
    if (learned && modelOutputIn.length !== 2 * len) {
      throw new EngineError('bad_shape', `${NAME}: variance_type "${c.variance_type}" needs a model output with twice the sample's channels (mean and variance)`);
    }
    const [modelOutput, predictedVariance] = learned
      ? splitChannels(modelOutputIn, options.shape?.[0] ?? 1)
      : [modelOutputIn, undefined];
    checkSameLength(NAME, modelOutput, sample);

    const prevT = this.previousTimestep(timestep);
    const alphaProdT = alphaAtTimestep(NAME, this.alphasCumprod, timestep);
    const alphaProdPrev = prevT >= 0 ? alphaAtTimestep(NAME, this.alphasCumprod, prevT) : 1;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdPrev = f32(1 - alphaProdPrev);
    const currentAlpha = f32(alphaProdT / alphaProdPrev);
    const currentBeta = f32(1 - currentAlpha);
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(betaProdT));

    // 1. Predicted x0 (eq. 15), then clip or threshold it.
    let x0: Float32Array = new Float32Array(len);
    for (let i = 0; i < len; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      x0[i] = c.prediction_type === 'epsilon' ? (s - sqrtBeta * m) / sqrtAlpha
        : c.prediction_type === 'sample' ? m
          : sqrtAlpha * s - sqrtBeta * m;
    }
    if (c.thresholding) {
      x0 = thresholdSample(x0, c.dynamic_thresholding_ratio, c.sample_max_value, options.shape?.[0] ?? 1);
    } else if (c.clip_sample) {
      const r = c.clip_sample_range;
      for (let i = 0; i < len; i++) x0[i] = Math.min(Math.max(x0[i]!, -r), r);
    }

    // 2. Posterior mean μ (eq. 7).
    const x0Coeff = f32(f32(f32(Math.sqrt(alphaProdPrev)) * currentBeta) / betaProdT);
    const sampleCoeff = f32(f32(f32(Math.sqrt(currentAlpha)) * betaProdPrev) / betaProdT);
    const prev = new Float32Array(len);
    for (let i = 0; i < len; i++) prev[i] = x0Coeff * x0[i]! + sampleCoeff * sample[i]!;

    // 3. Add σ_t·z, except at t = 0.
    if (timestep > 0) {
      const noise = drawNoise(NAME, options.generator, options.shape, len);
      const posterior = Math.max(f32(f32(betaProdPrev / betaProdT) * currentBeta), 1e-20);
      if (predictedVariance) {
        for (let i = 0; i < len; i++) prev[i] = prev[i]! + learnedStd(c.variance_type, predictedVariance[i]!, posterior, currentBeta) * noise[i]!;
      } else {
        const std = c.variance_type === 'fixed_small_log' ? f32(Math.exp(0.5 * f32(Math.log(posterior))))
          : c.variance_type === 'fixed_large' ? f32(Math.sqrt(currentBeta))
            : f32(Math.sqrt(posterior));
        for (let i = 0; i < len; i++) prev[i] = prev[i]! + std * noise[i]!;
      }
    }
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(NAME, this.alphasCumprod, original, noise, timestep);
  }

  /** diffusers 0.30: the fixed stride back, whatever the spacing. */
  private previousTimestep(timestep: number): number {
    const n = this.numInferenceSteps ?? this.c.num_train_timesteps;
    return timestep - Math.floor(this.c.num_train_timesteps / n);
  }
}

/**
 * σ_t of a learned-variance model: the predicted variance itself ("learned"), or a log-space interpolation
 * between the posterior variance β̃_t and β_t ("learned_range", Nichol & Dhariwal 2021, eq. 15).
 */
function learnedStd(varianceType: string, predicted: number, posterior: number, currentBeta: number): number {
  if (varianceType === 'learned') return Math.sqrt(predicted);
  const frac = (predicted + 1) / 2;
  return Math.exp(0.5 * (frac * Math.log(currentBeta) + (1 - frac) * Math.log(posterior)));
}

/** Splits [B, 2C, ...] into the first and second C channels of every batch item. */
function splitChannels(output: Float32Array, batch: number): [Float32Array, Float32Array] {
  const per = output.length / batch;
  const half = per / 2;
  const mean = new Float32Array(output.length / 2);
  const variance = new Float32Array(output.length / 2);
  for (let b = 0; b < batch; b++) {
    mean.set(output.subarray(b * per, b * per + half), b * half);
    variance.set(output.subarray(b * per + half, (b + 1) * per), b * half);
  }
  return [mean, variance];
}
