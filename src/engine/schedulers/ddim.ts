/**
 * DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), as diffusers 0.30.3
 * `DDIMScheduler`. From x_t and the predicted noise ε:
 *
 *   x0     = (x_t - sqrt(1 - ᾱ_t) · ε) / sqrt(ᾱ_t)
 *   x_prev = sqrt(ᾱ_prev) · x0 + sqrt(1 - ᾱ_prev - σ_t²) · ε + σ_t · z,   σ_t = η · sqrt(variance)
 *
 * with prev = t - num_train_timesteps // num_inference_steps (for every spacing, as diffusers) and
 * ᾱ_prev = final_alpha_cumprod past the start. η = 0 (the default) is deterministic and draws no noise.
 */
import {
  addNoiseAtAlpha,
  alphaAtTimestep,
  alphasCumprod,
  checkSameLength,
  drawNoise,
  integerTimesteps,
  makeBetas,
  requireTimesteps,
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

const NAME = 'DDIMScheduler';
const f32 = Math.fround;

/** Constructor arguments in diffusers' order, with its defaults. */
export const DDIM_CONFIG = {
  ...BETA_PARAMS,
  clip_sample: { type: 'boolean', default: true },
  set_alpha_to_one: { type: 'boolean', default: true },
  steps_offset: { type: 'int', default: 0 },
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  thresholding: { type: 'boolean', default: false },
  dynamic_thresholding_ratio: { type: 'number', default: 0.995 },
  clip_sample_range: { type: 'number', default: 1.0 },
  sample_max_value: { type: 'number', default: 1.0 },
  timestep_spacing: { type: 'string', default: 'leading', choices: TIMESTEP_SPACINGS },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
} satisfies ConfigSpec;

export type DDIMConfig = ConfigOf<typeof DDIM_CONFIG>;

export class DDIMScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  private readonly c: DDIMConfig;
  /** ᾱ used for the step past t = 0: 1 (set_alpha_to_one) or ᾱ_0. */
  private readonly finalAlphaCumprod: number;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, DDIM_CONFIG, config);
    this.c = values;
    this.config = record;
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    this.finalAlphaCumprod = values.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
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

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    const n = requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const c = this.c;
    const eta = options.eta ?? 0;
    const prevTimestep = timestep - Math.floor(c.num_train_timesteps / n);

    const alphaProdT = alphaAtTimestep(NAME, this.alphasCumprod, timestep);
    const alphaProdPrev = prevTimestep >= 0 ? alphaAtTimestep(NAME, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const sqrtAlpha = f32(Math.sqrt(alphaProdT));
    const sqrtBeta = f32(Math.sqrt(betaProdT));

    // 1. Predicted x0 and ε from the model output.
    const len = sample.length;
    let x0: Float32Array = new Float32Array(len);
    let eps: Float32Array = new Float32Array(len);
    for (let i = 0; i < len; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      switch (c.prediction_type) {
        case 'epsilon':
          x0[i] = (s - sqrtBeta * m) / sqrtAlpha;
          eps[i] = m;
          break;
        case 'sample':
          x0[i] = m;
          eps[i] = (s - sqrtAlpha * m) / sqrtBeta;
          break;
        default: // v_prediction
          x0[i] = sqrtAlpha * s - sqrtBeta * m;
          eps[i] = sqrtAlpha * m + sqrtBeta * s;
      }
    }

    // 2. Clip or threshold x0.
    if (c.thresholding) {
      x0 = thresholdSample(x0, c.dynamic_thresholding_ratio, c.sample_max_value, options.shape?.[0] ?? 1);
    } else if (c.clip_sample) {
      const r = c.clip_sample_range;
      for (let i = 0; i < len; i++) x0[i] = Math.min(Math.max(x0[i]!, -r), r);
    }

    // 3. σ_t from the DDIM variance (eq. 16), scaled by η.
    const betaProdPrev = f32(1 - alphaProdPrev);
    const variance = f32(f32(betaProdPrev / betaProdT) * f32(1 - f32(alphaProdT / alphaProdPrev)));
    const stdDev = f32(eta * Math.sqrt(variance));

    if (options.useClippedModelOutput) {
      // Re-derive ε from the clipped x0, as in Glide.
      eps = new Float32Array(len);
      for (let i = 0; i < len; i++) eps[i] = (sample[i]! - sqrtAlpha * x0[i]!) / sqrtBeta;
    }

    // 4. x_prev = sqrt(ᾱ_prev)·x0 + "direction pointing to x_t" (+ noise when η > 0).
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdPrev));
    const direction = f32(Math.sqrt(f32(f32(1 - alphaProdPrev) - f32(stdDev * stdDev))));
    const prev = new Float32Array(len);
    for (let i = 0; i < len; i++) prev[i] = sqrtAlphaPrev * x0[i]! + direction * eps[i]!;
    if (eta > 0) {
      const noise = drawNoise(NAME, options.generator, options.shape, len);
      for (let i = 0; i < len; i++) prev[i] = prev[i]! + stdDev * noise[i]!;
    }
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(NAME, this.alphasCumprod, original, noise, timestep);
  }
}
