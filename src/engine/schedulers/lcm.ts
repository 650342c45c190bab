/**
 * Latent Consistency Models (Luo et al. 2023, "Latent Consistency Models: Synthesizing High-Resolution Images
 * with Few-Step Inference", Algorithm 1 — multistep consistency sampling), as diffusers 0.30.3 `LCMScheduler`,
 * the scheduler of LCM-LoRA on SDXL. With the boundary-condition scalings of the consistency function
 *
 *   c_skip(t) = σ_data² / ((s·t)² + σ_data²),   c_out(t) = s·t / sqrt((s·t)² + σ_data²),   σ_data = 0.5, s = timestep_scaling
 *
 * each step predicts x0 = (x_t − sqrt(1 − ᾱ_t)·ε) / sqrt(ᾱ_t), the consistent estimate
 * denoised = c_out·x0 + c_skip·x_t, and re-noises it to the next timestep of the schedule:
 *
 *   x_prev = sqrt(ᾱ_prev)·denoised + sqrt(1 − ᾱ_prev)·z   (the last step returns denoised and draws nothing)
 *
 * The schedule is a subset of the distillation schedule (see distilledTimesteps); timestep_spacing and
 * steps_offset are declared, as in diffusers, but unused.
 */
import {
  addNoiseAtAlpha,
  alphaAtTimestep,
  alphasCumprod,
  checkSameLength,
  distilledTimesteps,
  drawNoise,
  indexForTimestep,
  makeBetas,
  predictOriginalAndEpsilon,
  requireTimesteps,
  rescaleZeroTerminalSnr,
  thresholdSample,
} from './common.js';
import { PREDICTION_TYPES, TIMESTEP_SPACINGS, resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler, StepOptions, StepOutput } from './types.js';

const NAME = 'LCMScheduler';
const f32 = Math.fround;
/** σ_data of the consistency-model parametrisation (diffusers hard-codes 0.5). */
const SIGMA_DATA = 0.5;

/** Constructor arguments in diffusers' order, with its defaults. */
export const LCM_CONFIG = {
  num_train_timesteps: { type: 'int', default: 1000, min: 1 },
  beta_start: { type: 'number', default: 0.00085 },
  beta_end: { type: 'number', default: 0.012 },
  beta_schedule: { type: 'string', default: 'scaled_linear' },
  trained_betas: { type: 'numbers?', default: null },
  original_inference_steps: { type: 'int', default: 50, min: 1 },
  clip_sample: { type: 'boolean', default: false },
  clip_sample_range: { type: 'number', default: 1.0 },
  set_alpha_to_one: { type: 'boolean', default: true },
  steps_offset: { type: 'int', default: 0 },
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  thresholding: { type: 'boolean', default: false },
  dynamic_thresholding_ratio: { type: 'number', default: 0.995 },
  sample_max_value: { type: 'number', default: 1.0 },
  timestep_spacing: { type: 'string', default: 'leading', choices: TIMESTEP_SPACINGS },
  timestep_scaling: { type: 'number', default: 10.0 },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
} satisfies ConfigSpec;

export type LCMConfig = ConfigOf<typeof LCM_CONFIG>;

/** The consistency function's boundary scalings at an integer timestep, in torch's float32 (t is an int64 tensor there). */
export function lcmBoundaryScalings(timestep: number, timestepScaling: number): { cSkip: number; cOut: number } {
  const scaled = f32(timestep * f32(timestepScaling));
  const denom = f32(f32(scaled * scaled) + f32(SIGMA_DATA * SIGMA_DATA));
  return { cSkip: f32(f32(SIGMA_DATA * SIGMA_DATA) / denom), cOut: f32(scaled / f32(Math.sqrt(denom))) };
}

export class LCMScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  private readonly c: LCMConfig;
  private readonly finalAlphaCumprod: number;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, LCM_CONFIG, config);
    this.c = values;
    this.config = record;
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    this.finalAlphaCumprod = values.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    this.timesteps = Array.from({ length: values.num_train_timesteps }, (_, i) => values.num_train_timesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = distilledTimesteps(NAME, this.c.num_train_timesteps, this.c.original_inference_steps, numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    return this.stepOutput(modelOutput, timestep, sample, options).prevSample;
  }

  /** step() with diffusers' LCMSchedulerOutput: prev_sample and `denoised` (what LatentConsistencyModelPipeline decodes). */
  stepOutput(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): StepOutput {
    const n = requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const c = this.c;
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    const index = this.stepIndex;
    const prevTimestep = index + 1 < this.timesteps.length ? this.timesteps[index + 1]! : timestep;

    const alphaProdT = alphaAtTimestep(NAME, this.alphasCumprod, timestep);
    const alphaProdPrev = prevTimestep >= 0 ? alphaAtTimestep(NAME, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const { cSkip, cOut } = lcmBoundaryScalings(timestep, c.timestep_scaling);

    let { x0 } = predictOriginalAndEpsilon(c.prediction_type, alphaProdT, sample, modelOutput);
    if (c.thresholding) {
      x0 = thresholdSample(x0, c.dynamic_thresholding_ratio, c.sample_max_value, options.shape?.[0] ?? 1);
    } else if (c.clip_sample) {
      const r = c.clip_sample_range;
      x0 = x0.map((v) => Math.min(Math.max(v, -r), r));
    }

    const len = sample.length;
    const denoised = new Float32Array(len);
    for (let i = 0; i < len; i++) denoised[i] = f32(cOut * x0[i]!) + f32(cSkip * sample[i]!);

    let prevSample = denoised;
    if (index !== n - 1) {
      const noise = drawNoise(NAME, options.generator, options.shape, len);
      const sqrtAlphaPrev = f32(Math.sqrt(alphaProdPrev));
      const sqrtBetaPrev = f32(Math.sqrt(f32(1 - alphaProdPrev)));
      prevSample = new Float32Array(len);
      for (let i = 0; i < len; i++) prevSample[i] = f32(sqrtAlphaPrev * denoised[i]!) + f32(sqrtBetaPrev * noise[i]!);
    }
    this.stepIndex = index + 1;
    return { prevSample, extras: { denoised } };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(NAME, this.alphasCumprod, original, noise, timestep);
  }
}
