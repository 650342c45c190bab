/**
 * What LCM and TCD share: consistency-distilled schedulers on an ᾱ_t training schedule (diffusers'
 * LCMScheduler and TCDScheduler have the same constructor arguments and `set_timesteps`). The timesteps are a
 * subset of the distillation schedule (see distilledTimesteps); timestep_spacing and steps_offset are
 * declared, as in diffusers, but unused. Each subclass writes its own step, with diffusers' output fields.
 */
import {
  addNoiseAtAlpha,
  alphasCumprod,
  distilledTimesteps,
  indexForTimestep,
  makeBetas,
  rescaleZeroTerminalSnr,
} from './common.js';
import { PREDICTION_TYPES, TIMESTEP_SPACINGS, resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler, SchedulerName, StepOptions, StepOutput } from './types.js';

/** LCMScheduler's constructor arguments in diffusers' order, with its defaults (TCD's differ in one). */
export const CONSISTENCY_CONFIG = {
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

export type ConsistencyConfig = ConfigOf<typeof CONSISTENCY_CONFIG>;

export abstract class ConsistencyScheduler implements Scheduler {
  abstract readonly name: SchedulerName;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  protected readonly c: ConsistencyConfig;
  /** ᾱ past t = 0: 1 (set_alpha_to_one) or ᾱ_0. */
  protected readonly finalAlphaCumprod: number;
  private stepIndex: number | undefined;

  protected constructor(private readonly className: SchedulerName, spec: ConfigSpec, config: Record<string, unknown>) {
    const { values, record } = resolveConfig(className, spec, config);
    this.c = values as unknown as ConsistencyConfig;
    this.config = record;
    let betas = makeBetas(className, this.c, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (this.c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    this.finalAlphaCumprod = this.c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    const n = this.c.num_train_timesteps;
    this.timesteps = Array.from({ length: n }, (_, i) => n - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = distilledTimesteps(this.className, this.c.num_train_timesteps, this.c.original_inference_steps, numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    return this.stepOutput(modelOutput, timestep, sample, options).prevSample;
  }

  abstract stepOutput(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepOutput;

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(this.className, this.alphasCumprod, original, noise, timestep);
  }

  /** The position of this step in the schedule (diffusers' step_index, found from the first timestep) and the next timestep, if any. */
  protected advance(timestep: number): { index: number; next: number | undefined } {
    this.stepIndex ??= indexForTimestep(this.className, this.timesteps, timestep);
    const index = this.stepIndex;
    this.stepIndex = index + 1;
    return { index, next: this.timesteps[index + 1] };
  }
}
