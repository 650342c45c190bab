/**
 * What every scheduler offers, after diffusers' SchedulerMixin: set the timesteps, then for each timestep
 * scale the model input and take a step.
 *
 *   scheduler.setTimesteps(30);
 *   let latents = noise.map((v) => v * scheduler.initNoiseSigma);
 *   for (const t of scheduler.timesteps) {
 *     const eps = unet(scheduler.scaleModelInput(latents, t), t);
 *     latents = scheduler.step(eps, t, latents, { generator, shape });
 *   }
 *
 * Tensors are flat row-major Float32Arrays of any shape: the schedulers are elementwise (only dynamic
 * thresholding and DDPM's learned variance look at the batch dimension, through `shape`). Inputs are never
 * modified; step() returns a new array, scaleModelInput() may return its input when it is the identity.
 */
import type { NoiseSource } from '../rng/seed.js';

export type { NoiseSource };

/** The schedulers the service offers, by diffusers class name. */
export type SchedulerName =
  | 'FlowMatchEulerDiscreteScheduler'
  | 'EulerDiscreteScheduler'
  | 'DDIMScheduler'
  | 'LMSDiscreteScheduler'
  | 'DPMSolverMultistepScheduler'
  | 'PNDMScheduler'
  | 'DDPMScheduler'
  | 'EulerAncestralDiscreteScheduler'
  | 'LCMScheduler'
  | 'TCDScheduler';

/** diffusers' step() output: prev_sample and the fields some schedulers add, by diffusers' field name (LCM's `denoised`, TCD's `pred_noised_sample`). */
export interface StepOutput {
  prevSample: Float32Array;
  extras: Readonly<Record<string, Float32Array>>;
}

/** diffusers' step() keyword arguments; each scheduler reads the ones its diffusers class takes. */
export interface StepOptions {
  /** Draws the noise of ancestral / stochastic steps (diffusers' `generator`). */
  generator?: NoiseSource;
  /** Shape of the sample, e.g. [1, 4, 128, 128]: passed to the generator and used to find the batch. Default [length]. */
  shape?: readonly number[];
  /**
   * DDIM: weight of the noise added per step (0 = deterministic DDIM, 1 = DDPM-like), default 0.
   * TCD: γ, the stochasticity of each step (0 = deterministic), default 0.3 as diffusers' step().
   */
  eta?: number;
  /** DDIM: recompute eps from the clipped x0. Default false. */
  useClippedModelOutput?: boolean;
  /** Euler: stochastic churn (Karras et al. 2022, Algorithm 2). Defaults 0, 0, Infinity, 1. */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
}

export interface Scheduler {
  readonly name: SchedulerName;
  /** The config as diffusers would hold it (`scheduler.config`): every declared key resolved, plus carried keys. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Set by setTimesteps: the timesteps to visit, in order (integers for DDIM/DDPM/PNDM/DPM-Solver, float32 values otherwise). */
  readonly timesteps: readonly number[];
  /** Noise levels per step plus the final one (k-diffusion style schedulers); undefined for the others. */
  readonly sigmas: Float32Array | undefined;
  /** Training-schedule ᾱ_t (undefined for flow matching). */
  readonly alphasCumprod: Float32Array | undefined;
  /** Standard deviation of the initial noise: multiply the starting latents by it. */
  readonly initNoiseSigma: number;
  readonly numInferenceSteps: number | undefined;
  /** Prepares the schedule for `numInferenceSteps` steps and resets any multistep history. */
  setTimesteps(numInferenceSteps: number): void;
  /** The model input for this timestep (k-diffusion schedulers divide by sqrt(sigma² + 1)). */
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  /** One denoising step: the sample at the previous (less noisy) timestep. */
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): Float32Array;
  /** step() with its whole output, for schedulers whose diffusers output has more than prev_sample. */
  stepOutput?(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepOutput;
  /** Noises a clean sample to the level of `timestep` (img2img / inpainting starts). */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
}
