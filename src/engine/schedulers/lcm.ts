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
 */
import { alphaAtTimestep, checkSameLength, drawNoise, predictOriginalAndEpsilon, requireTimesteps, thresholdSample } from './common.js';
import { CONSISTENCY_CONFIG, ConsistencyScheduler } from './consistency.js';
import type { ConfigSpec } from './config.js';
import type { StepOptions, StepOutput } from './types.js';

const NAME = 'LCMScheduler';
const f32 = Math.fround;
/** σ_data of the consistency-model parametrisation (diffusers hard-codes 0.5). */
const SIGMA_DATA = 0.5;

/** Constructor arguments in diffusers' order, with its defaults (original_inference_steps is required here). */
export const LCM_CONFIG = {
  ...CONSISTENCY_CONFIG,
  original_inference_steps: { type: 'int', default: 50, min: 1 },
} satisfies ConfigSpec;

/** The consistency function's boundary scalings at an integer timestep, in torch's float32 (t is an int64 tensor there). */
export function lcmBoundaryScalings(timestep: number, timestepScaling: number): { cSkip: number; cOut: number } {
  const scaled = f32(timestep * f32(timestepScaling));
  const denom = f32(f32(scaled * scaled) + f32(SIGMA_DATA * SIGMA_DATA));
  return { cSkip: f32(f32(SIGMA_DATA * SIGMA_DATA) / denom), cOut: f32(scaled / f32(Math.sqrt(denom))) };
}

export class LCMScheduler extends ConsistencyScheduler {
  readonly name = NAME;

  constructor(config: Record<string, unknown> = {}) {
    super(NAME, LCM_CONFIG, config);
  }

  /** step() with diffusers' LCMSchedulerOutput: prev_sample and `denoised` (what LatentConsistencyModelPipeline decodes). */
  stepOutput(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): StepOutput {
    const n = requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const c = this.c;
    const { index, next } = this.advance(timestep);
    const prevTimestep = next ?? timestep;

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
    return { prevSample, extras: { denoised } };
  }
}
