/**
 * PNDM (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds"), as diffusers 0.30.3
 * `PNDMScheduler`: a linear multistep method (PLMS, 4th-order Adams–Bashforth on ε) over the DDIM transfer
 *
 *   x_prev = sqrt(ᾱ_prev / ᾱ_t) · x_t - (ᾱ_prev - ᾱ_t) · ε / (ᾱ_t · sqrt(1 - ᾱ_prev) + sqrt(ᾱ_t (1 - ᾱ_t) ᾱ_prev))   (eq. 11)
 *
 * warmed up either by Runge–Kutta steps (PRK: 4 model calls per step for the first 3 steps) or, with
 * skip_prk_steps (what Stable Diffusion configs use), by one extra model call: the second timestep
 * repeats, the first step is Euler-like and the repeat corrects it (Heun). So the schedule has
 * num_inference_steps + 1 entries and the caller runs the model at each.
 */
import { EngineError } from '../errors.js';
import {
  addNoiseAtAlpha,
  alphaAtTimestep,
  alphasCumprod,
  arange,
  checkSameLength,
  checkStepCount,
  linspace,
  makeBetas,
  requireTimesteps,
  roundHalfEven,
} from './common.js';
import { BETA_PARAMS, TIMESTEP_SPACINGS, resolveConfig, type ConfigOf, type ConfigSpec } from './config.js';
import type { Scheduler } from './types.js';

const NAME = 'PNDMScheduler';
const f32 = Math.fround;
/** PLMS keeps the last four ε. */
const PNDM_ORDER = 4;

/** Constructor arguments in diffusers' order, with its defaults. */
export const PNDM_CONFIG = {
  ...BETA_PARAMS,
  skip_prk_steps: { type: 'boolean', default: false },
  set_alpha_to_one: { type: 'boolean', default: false },
  prediction_type: { type: 'string', default: 'epsilon', choices: ['epsilon', 'v_prediction'] },
  timestep_spacing: { type: 'string', default: 'leading', choices: TIMESTEP_SPACINGS },
  steps_offset: { type: 'int', default: 0 },
} satisfies ConfigSpec;

export type PNDMConfig = ConfigOf<typeof PNDM_CONFIG>;

export class PNDMScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  numInferenceSteps: number | undefined;
  private readonly c: PNDMConfig;
  private readonly finalAlphaCumprod: number;
  private prkTimesteps: number[] = [];
  /** Model outputs of past steps (PLMS history), oldest first. */
  private ets: Float32Array[] = [];
  /** Model calls made since setTimesteps. */
  private counter = 0;
  /** PRK: the running Runge–Kutta combination of this step's ε; PLMS warm-up: the sample the step started from. */
  private curModelOutput: Float32Array | undefined;
  private curSample: Float32Array | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, PNDM_CONFIG, config);
    this.c = values;
    this.config = record;
    this.alphasCumprod = alphasCumprod(makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']));
    this.finalAlphaCumprod = values.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    // Before setTimesteps, diffusers walks all training timesteps.
    this.timesteps = Array.from({ length: values.num_train_timesteps }, (_, i) => values.num_train_timesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    const N = c.num_train_timesteps;
    const n = numInferenceSteps;
    checkStepCount(NAME, n, Infinity);
    // Ascending base grid.
    let base: number[];
    switch (c.timestep_spacing) {
      case 'linspace':
        base = linspace(0, N - 1, n).map(roundHalfEven);
        break;
      case 'leading': {
        const ratio = Math.floor(N / n);
        base = Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset);
        break;
      }
      default: // trailing
        base = arange(N, 0, -N / n).map(roundHalfEven).reverse().map((t) => t - 1);
    }

    if (c.skip_prk_steps) {
      // PLMS only: repeat the second-to-last grid point (the warm-up's correction call), then descend.
      this.prkTimesteps = [];
      this.timesteps = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      // PRK: each of the 3 highest grid points t visited as t, t - h/2, t - h/2, t - h (h = N // n).
      const half = Math.floor(Math.floor(N / n) / 2);
      const top = base.slice(-PNDM_ORDER);
      const pairs = top.flatMap((t) => [t, t + half]);
      const repeated = pairs.slice(0, -1).flatMap((t) => [t, t]).slice(1, -1);
      this.prkTimesteps = repeated.reverse();
      this.timesteps = [...this.prkTimesteps, ...base.slice(0, -3).reverse()];
    }
    this.numInferenceSteps = n;
    this.ets = [];
    this.counter = 0;
    this.curModelOutput = undefined;
    this.curSample = undefined;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    return this.counter < this.prkTimesteps.length && !this.c.skip_prk_steps
      ? this.stepPrk(modelOutput, timestep, sample)
      : this.stepPlms(modelOutput, timestep, sample);
  }

  /** Runge–Kutta warm-up: four calls per step, ε combined with weights 1/6, 1/3, 1/3, 1/6. */
  private stepPrk(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const stride = Math.floor(this.c.num_train_timesteps / this.numInferenceSteps!);
    const prevTimestep = timestep - (this.counter % 2 ? 0 : Math.floor(stride / 2));
    const stepStart = this.prkTimesteps[Math.floor(this.counter / 4) * 4]!;
    const phase = this.counter % 4;
    let eps = modelOutput;
    if (phase === 0) {
      this.curModelOutput = modelOutput.map((v) => v / 6);
      this.ets.push(modelOutput.slice());
      this.curSample = sample.slice();
    } else if (phase === 1 || phase === 2) {
      const acc = this.curModelOutput!;
      for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + modelOutput[i]! / 3;
    } else {
      const acc = this.curModelOutput!;
      eps = acc.map((v, i) => v + modelOutput[i]! / 6);
      this.curModelOutput = undefined;
    }
    const prev = this.prevSample(this.curSample ?? sample, stepStart, prevTimestep, eps);
    this.counter++;
    return prev;
  }

  /** Linear multistep on the ε history (Adams–Bashforth of order 1..4). */
  private stepPlms(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const c = this.c;
    if (!c.skip_prk_steps && this.ets.length < 3) {
      throw new EngineError('scheduler_state', `${NAME}: PLMS needs the 3 Runge–Kutta warm-up steps first; follow scheduler.timesteps`);
    }
    const stride = Math.floor(c.num_train_timesteps / this.numInferenceSteps!);
    let t = timestep;
    let prevTimestep = timestep - stride;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput.slice());
    } else {
      // The warm-up's correction call: it evaluates the repeated timestep but corrects the step from t + stride.
      prevTimestep = timestep;
      t = timestep + stride;
    }

    const e = this.ets;
    const k = e.length;
    const len = sample.length;
    let eps: Float32Array = new Float32Array(len);
    let from = sample;
    if (k === 1 && this.counter === 0) {
      eps = modelOutput;
      this.curSample = sample.slice();
    } else if (k === 1 && this.counter === 1) {
      // Heun: average the slopes at both ends, restart from the step's first sample.
      const [e0] = e as [Float32Array];
      for (let i = 0; i < len; i++) eps[i] = (modelOutput[i]! + e0[i]!) / 2;
      from = this.curSample!;
      this.curSample = undefined;
    } else if (k === 2) {
      const [e0, e1] = e as [Float32Array, Float32Array];
      for (let i = 0; i < len; i++) eps[i] = (3 * e1[i]! - e0[i]!) / 2;
    } else if (k === 3) {
      const [e0, e1, e2] = e as [Float32Array, Float32Array, Float32Array];
      for (let i = 0; i < len; i++) eps[i] = (23 * e2[i]! - 16 * e1[i]! + 5 * e0[i]!) / 12;
    } else {
      const [e0, e1, e2, e3] = e as [Float32Array, Float32Array, Float32Array, Float32Array];
      for (let i = 0; i < len; i++) eps[i] = (1 / 24) * (55 * e3[i]! - 59 * e2[i]! + 37 * e1[i]! - 9 * e0[i]!);
    }
    const prev = this.prevSample(from, t, prevTimestep, eps);
    this.counter++;
    return prev;
  }

  /** Eq. 11: the DDIM-style transfer from t to prevTimestep along ε. */
  private prevSample(sample: Float32Array, t: number, prevTimestep: number, eps: Float32Array): Float32Array {
    const alphaProdT = alphaAtTimestep(NAME, this.alphasCumprod, t);
    const alphaProdPrev = prevTimestep >= 0 ? alphaAtTimestep(NAME, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdPrev = f32(1 - alphaProdPrev);
    if (this.c.prediction_type === 'v_prediction') {
      const sa = f32(Math.sqrt(alphaProdT));
      const sb = f32(Math.sqrt(betaProdT));
      eps = eps.map((v, i) => sa * v + sb * sample[i]!);
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdPrev / alphaProdT)));
    const denom = f32(
      f32(alphaProdT * f32(Math.sqrt(betaProdPrev))) + f32(Math.sqrt(f32(f32(alphaProdT * betaProdT) * alphaProdPrev))),
    );
    const epsCoeff = f32(alphaProdPrev - alphaProdT);
    const prev = new Float32Array(sample.length);
    for (let i = 0; i < prev.length; i++) prev[i] = sampleCoeff * sample[i]! - (epsCoeff * eps[i]!) / denom;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtAlpha(NAME, this.alphasCumprod, original, noise, timestep);
  }
}
