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
 * pipelines pass their own eta (0.0 unless given), so a pipeline must pass γ explicitly. Unlike LCM,
 * original_inference_steps may be null (the schedule is then every training timestep).
 */
import { alphaAtTimestep, checkSameLength, drawNoise, predictOriginalAndEpsilon, requireTimesteps } from './common.js';
import { CONSISTENCY_CONFIG, ConsistencyScheduler } from './consistency.js';
import { EngineError } from '../errors.js';
import type { StepOptions, StepOutput } from './types.js';

const NAME = 'TCDScheduler';
const f32 = Math.fround;
/** diffusers' TCDScheduler.step default for eta (γ in the paper). */
export const TCD_DEFAULT_GAMMA = 0.3;

/** Constructor arguments in diffusers' order, with its defaults. */
export const TCD_CONFIG = CONSISTENCY_CONFIG;

export class TCDScheduler extends ConsistencyScheduler {
  readonly name = NAME;

  constructor(config: Record<string, unknown> = {}) {
    super(NAME, TCD_CONFIG, config);
  }

  /** step() with diffusers' TCDSchedulerOutput: prev_sample and `pred_noised_sample` (x_s). */
  stepOutput(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): StepOutput {
    const n = requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const gamma = options.eta ?? TCD_DEFAULT_GAMMA;
    if (!(gamma >= 0 && gamma <= 1)) {
      throw new EngineError('bad_scheduler_option', `${NAME}: eta (gamma) must be in [0, 1], got ${gamma}`);
    }
    const { index, next } = this.advance(timestep);
    const prevTimestep = next ?? 0;
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
    return { prevSample, extras: { pred_noised_sample: predNoised } };
  }
}
