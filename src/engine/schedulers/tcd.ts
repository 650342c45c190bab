/**
 * Trajectory Consistency Distillation (Zheng et al. 2024, "Trajectory Consistency Distillation", §4.3 strategic
 * stochastic sampling), as diffusers 0.30.3 `TCDScheduler`, the scheduler of TCD-LoRA on SDXL. With γ = eta and
 * s = floor((1 − γ)·t_prev), each step predicts x0 = (x_t − sqrt(1 − ᾱ_t)·ε) / sqrt(ᾱ_t), moves along the
 * trajectory to s,
 *
 *   x_s = sqrt(ᾱ_s)·x0 + sqrt(1 − ᾱ_s)·ε                            (pred_noised_sample)
 *
 * and, for γ > 0 and not at the last step, forward-diffuses back to t_prev:
 *
 *   x_prev = sqrt(ᾱ_prev / ᾱ_s)·x_s + sqrt(1 − ᾱ_prev / ᾱ_s)·z
 *
 * γ = 0 is deterministic and draws nothing; γ = 1 is LCM-like. diffusers' step() defaults eta to 0.3, but SDXL
 * pipelines pass their own eta (0.0 unless given), so a pipeline must pass γ explicitly.
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
} from './common.js';
import { EngineError } from '../errors.js';
import { PREDICTION_TYPES, TIMESTEP_SPACINGS, resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler, StepOptions, StepOutput } from './types.js';

const NAME = 'TCDScheduler';
const f32 = Math.fround;
/** diffusers' TCDScheduler.step default for eta (γ in the paper). */
export const TCD_DEFAULT_GAMMA = 0.3;

/** Constructor arguments in diffusers' order, with its defaults. */
export const TCD_CONFIG = {
  num_train_timesteps: { type: 'int', default: 1000, min: 1 },
  beta_start: { type: 'number', default: 0.00085 },
  beta_end: { type: 'number', default: 0.012 },
  beta_schedule: { type: 'string', default: 'scaled_linear' },
  trained_betas: { type: 'numbers?', default: null },
  original_inference_steps: { type: 'number?', default: 50 },
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

export type TCDConfig = ConfigOf<typeof TCD_CONFIG>;

export class TCDScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  private readonly c: TCDConfig;
  private readonly finalAlphaCumprod: number;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, TCD_CONFIG, config);
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

  /** step() with diffusers' TCDSchedulerOutput: prev_sample and `pred_noised_sample` (x_s). */
  stepOutput(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): StepOutput {
    const n = requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const gamma = options.eta ?? TCD_DEFAULT_GAMMA;
    if (!(gamma >= 0 && gamma <= 1)) {
      throw new EngineError('bad_scheduler_option', `${NAME}: eta (gamma) must be in [0, 1], got ${gamma}`);
    }
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    const index = this.stepIndex;
    const prevTimestep = index + 1 < this.timesteps.length ? this.timesteps[index + 1]! : 0;
    // torch: floor(python float · int64 tensor) in float32, back to int64.
    const timestepS = Math.floor(f32(f32(1 - gamma) * prevTimestep));

    const alphaProdT = alphaAtTimestep(NAME, this.alphasCumprod, timestep);
    const alphaProdPrev = prevTimestep >= 0 ? alphaAtTimestep(NAME, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const alphaProdS = alphaAtTimestep(NAME, this.alphasCumprod, timestepS);

    const { x0, eps } = predictOriginalAndEpsilon(this.c.prediction_type, alphaProdT, sample, modelOutput);
    const sqrtAlphaS = f32(Math.sqrt(alphaProdS));
    const sqrtBetaS = f32(Math.sqrt(f32(1 - alphaProdS)));
    const len = sample.length;
    const predNoised = new Float32Array(len);
    for (let i = 0; i < len; i++) predNoised[i] = f32(sqrtAlphaS * x0[i]!) + f32(sqrtBetaS * eps[i]!);

    let prevSample = predNoised;
    if (gamma > 0 && index !== n - 1) {
      const noise = drawNoise(NAME, options.generator, options.shape, len);
      const ratio = f32(alphaProdPrev / alphaProdS);
      const keep = f32(Math.sqrt(ratio));
      const add = f32(Math.sqrt(f32(1 - ratio)));
      prevSample = new Float32Array(len);
      for (let i = 0; i < len; i++) prevSample[i] = f32(keep * predNoised[i]!) + f32(add * noise[i]!);
    }
    this.stepIndex = index + 1;
    return { prevSample, extras: { pred_noised_sample: predNoised } };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(NAME, this.alphasCumprod, original, noise, timestep);
  }
}
