/**
 * DPM-Solver / DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
 * Diffusion Probabilistic Models", Algorithm 2), as diffusers 0.30.3 `DPMSolverMultistepScheduler`.
 *
 * With α_t = 1/sqrt(σ² + 1), σ_t = σ·α_t (VP form of the k-diffusion σ) and λ = log(α_t/σ_t), each step
 * integrates the ODE exactly in λ for a polynomial model output. DPM-Solver++ (the default) works on the
 * data prediction x0; order 2 uses the previous step's x0 as well (D1 = (m0 - m1)/r0), "midpoint" or
 * "heun" differing only in the D1 coefficient:
 *
 *   x_t = (σ_t/σ_s) · x_s - α_t (e^{-h} - 1) · D0 - ½ α_t (e^{-h} - 1) · D1,   h = λ_t - λ_s
 *
 * The first step is first order (no history), and so is the last with final sigma 0 or lower_order_final
 * below 15 steps. The SDE variants add σ_t·sqrt(1 - e^{-2h})·z with z from the step's generator.
 */
import { EngineError } from '../errors.js';
import {
  alphasCumprod,
  arange,
  checkSameLength,
  checkStepCount,
  drawNoise,
  indexForTimestep,
  interpAtIndex,
  karrasSigmas,
  linspace,
  logF32,
  makeBetas,
  requireTimesteps,
  rescaleZeroTerminalSnr,
  roundHalfEven,
  sigmaToT,
  sigmasFromAlphasCumprod,
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

const NAME = 'DPMSolverMultistepScheduler';
const f32 = Math.fround;

/** Constructor arguments in diffusers' order, with its defaults ("deis" and "logrho"/"bh1"/"bh2" are aliases diffusers maps, see below). */
export const DPM_SOLVER_MULTISTEP_CONFIG = {
  ...BETA_PARAMS,
  solver_order: { type: 'int', default: 2, min: 1 },
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  thresholding: { type: 'boolean', default: false },
  dynamic_thresholding_ratio: { type: 'number', default: 0.995 },
  sample_max_value: { type: 'number', default: 1.0 },
  algorithm_type: { type: 'string', default: 'dpmsolver++', choices: ['dpmsolver', 'dpmsolver++', 'sde-dpmsolver', 'sde-dpmsolver++', 'deis'] },
  solver_type: { type: 'string', default: 'midpoint', choices: ['midpoint', 'heun', 'logrho', 'bh1', 'bh2'] },
  lower_order_final: { type: 'boolean', default: true },
  euler_at_final: { type: 'boolean', default: false },
  use_karras_sigmas: { type: 'boolean', default: false },
  use_lu_lambdas: { type: 'boolean', default: false },
  final_sigmas_type: { type: 'string', default: 'zero', choices: ['zero', 'sigma_min'] },
  lambda_min_clipped: { type: 'number', default: -Infinity },
  // diffusers also takes "learned"/"learned_range" (DeepFloyd IF: drops the model's variance channels);
  // no model served here predicts variance, so they are rejected rather than half-supported.
  variance_type: { type: 'string?', default: null, choices: [] },
  timestep_spacing: { type: 'string', default: 'linspace', choices: TIMESTEP_SPACINGS },
  steps_offset: { type: 'int', default: 0 },
  rescale_betas_zero_snr: { type: 'boolean', default: false },
} satisfies ConfigSpec;

export type DPMSolverMultistepConfig = ConfigOf<typeof DPM_SOLVER_MULTISTEP_CONFIG>;

/** VP coefficients of a k-diffusion sigma, in float32 as diffusers' 0-d tensors. */
function alphaSigma(sigma: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const sigmaT = f32(sigma * alpha);
  return { alpha, sigma: sigmaT, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT))) };
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  timesteps: readonly number[] = [];
  sigmas: Float32Array = new Float32Array(0);
  numInferenceSteps: number | undefined;
  private readonly c: DPMSolverMultistepConfig;
  private readonly algorithm: 'dpmsolver' | 'dpmsolver++' | 'sde-dpmsolver' | 'sde-dpmsolver++';
  private readonly solver: 'midpoint' | 'heun';
  private readonly trainSigmas: Float32Array;
  private readonly logSigmas: Float32Array;
  /** λ(t) = log(α_t/σ_t) of the training schedule (float32), decreasing in t. */
  private readonly lambdas: Float32Array;
  /** Converted model outputs of the last solver_order steps, oldest first. */
  private modelOutputs: Float32Array[] = [];
  private lowerOrderNums = 0;
  private stepIndex: number | undefined;

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, DPM_SOLVER_MULTISTEP_CONFIG, config);
    this.c = values;
    this.config = record;
    // diffusers maps other solvers' names onto its own.
    this.algorithm = values.algorithm_type === 'deis' ? 'dpmsolver++' : (values.algorithm_type as DPMSolverMultistepScheduler['algorithm']);
    this.solver = values.solver_type === 'heun' ? 'heun' : 'midpoint';
    if (!this.algorithm.endsWith('++') && values.final_sigmas_type === 'zero') {
      throw new EngineError(
        'bad_scheduler_config',
        `${NAME}: final_sigmas_type "zero" is not supported with algorithm_type "${values.algorithm_type}"; use "sigma_min"`,
      );
    }
    if (values.solver_order > 3) {
      throw new EngineError('bad_scheduler_config', `${NAME}: solver_order must be 1, 2 or 3, got ${values.solver_order}`);
    }
    let betas = makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (values.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprod(betas);
    // Zero terminal SNR would make σ infinite at the last step: use float16's smallest subnormal instead.
    if (values.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.logSigmas = logF32(this.trainSigmas);
    this.lambdas = this.alphasCumprod.map((a) => f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
    // Before setTimesteps, diffusers walks all training timesteps.
    this.timesteps = Array.from({ length: values.num_train_timesteps }, (_, i) => values.num_train_timesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    const n = numInferenceSteps;
    checkStepCount(NAME, n, Infinity);
    // Skip the noisiest training steps whose λ is below lambda_min_clipped (for cosine schedules).
    let clipped = 0;
    while (clipped < this.lambdas.length && this.lambdas[this.lambdas.length - 1 - clipped]! < c.lambda_min_clipped) clipped++;
    const lastTimestep = c.num_train_timesteps - clipped;

    let timesteps: number[];
    switch (c.timestep_spacing) {
      case 'linspace':
        timesteps = linspace(0, lastTimestep - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
        break;
      case 'leading': {
        const ratio = Math.floor(lastTimestep / (n + 1));
        timesteps = Array.from({ length: n }, (_, i) => (n - i) * ratio + c.steps_offset);
        break;
      }
      default: // trailing
        timesteps = arange(lastTimestep, 0, -c.num_train_timesteps / n).map((t) => roundHalfEven(t) - 1);
    }

    let sigmas: number[];
    if (c.use_karras_sigmas) {
      const descending = [...this.trainSigmas].reverse();
      sigmas = karrasSigmas(descending[descending.length - 1]!, descending[0]!, n);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, this.logSigmas)));
    } else if (c.use_lu_lambdas) {
      // Lu et al.'s uniform-λ schedule (diffusers spaces log σ evenly between the table's ends).
      const logs = [...this.logSigmas].reverse();
      const hi = logs[0]!;
      const lo = logs[logs.length - 1]!;
      sigmas = linspace(0, 1, n).map((r) => Math.exp(hi + r * (lo - hi)));
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, this.logSigmas)));
    } else {
      sigmas = interpAtIndex(timesteps, this.trainSigmas);
    }
    const a0 = this.alphasCumprod[0]!;
    const last = c.final_sigmas_type === 'sigma_min' ? Math.sqrt(f32(f32(1 - a0) / a0)) : 0;
    this.sigmas = Float32Array.from([...sigmas, last]);
    this.timesteps = timesteps;
    this.numInferenceSteps = timesteps.length;
    this.modelOutputs = [];
    this.lowerOrderNums = 0;
    this.stepIndex = undefined;
  }

  scaleModelInput(sample: Float32Array, _timestep?: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options: StepOptions = {}): Float32Array {
    requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    const c = this.c;
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep, true);
    const i = this.stepIndex;
    const steps = this.timesteps.length;

    // Lower the order at the end: needed for stability below 15 steps, and to land on σ = 0 exactly.
    const lowerOrderFinal = i === steps - 1 && (c.euler_at_final || (c.lower_order_final && steps < 15) || c.final_sigmas_type === 'zero');
    const lowerOrderSecond = i === steps - 2 && c.lower_order_final && steps < 15;

    const converted = this.convertModelOutput(modelOutput, sample, i, options);
    this.modelOutputs.push(converted);
    if (this.modelOutputs.length > c.solver_order) this.modelOutputs.shift();

    const sde = this.algorithm.startsWith('sde');
    const noise = sde ? drawNoise(NAME, options.generator, options.shape, sample.length) : undefined;

    let prev: Float32Array;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.firstOrderUpdate(converted, sample, i, noise);
    } else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = this.secondOrderUpdate(sample, i, noise);
    } else {
      if (sde) throw new EngineError('bad_scheduler_config', `${NAME}: solver_order 3 is not available for algorithm_type "${c.algorithm_type}"`);
      prev = this.thirdOrderUpdate(sample, i);
    }
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const { alpha, sigma } = alphaSigma(this.sigmas[indexForTimestep(NAME, this.timesteps, timestep, true)]!);
    return original.map((x, j) => alpha * x + sigma * noise[j]!);
  }

  /** DPM-Solver++ works on x0, DPM-Solver on ε: convert whatever the model predicts. */
  private convertModelOutput(modelOutput: Float32Array, sample: Float32Array, i: number, options: StepOptions): Float32Array {
    const c = this.c;
    const { alpha, sigma } = alphaSigma(this.sigmas[i]!);
    const len = sample.length;
    const out = new Float32Array(len);
    const type = c.prediction_type;
    if (this.algorithm.endsWith('++')) {
      if (type === 'epsilon') for (let j = 0; j < len; j++) out[j] = (sample[j]! - sigma * modelOutput[j]!) / alpha;
      else if (type === 'sample') out.set(modelOutput);
      else for (let j = 0; j < len; j++) out[j] = alpha * sample[j]! - sigma * modelOutput[j]!;
      return c.thresholding ? thresholdSample(out, c.dynamic_thresholding_ratio, c.sample_max_value, options.shape?.[0] ?? 1) : out;
    }
    if (type === 'epsilon') out.set(modelOutput);
    else if (type === 'sample') for (let j = 0; j < len; j++) out[j] = (sample[j]! - alpha * modelOutput[j]!) / sigma;
    else for (let j = 0; j < len; j++) out[j] = alpha * modelOutput[j]! + sigma * sample[j]!;
    if (!c.thresholding) return out;
    // Threshold x0 and convert back to ε.
    const x0 = thresholdSample(out.map((e, j) => (sample[j]! - sigma * e) / alpha), c.dynamic_thresholding_ratio, c.sample_max_value, options.shape?.[0] ?? 1);
    return x0.map((x, j) => (sample[j]! - alpha * x) / sigma);
  }

  /** Order 1 (DDIM in λ): x_t = (σ_t/σ_s) x_s - α_t (e^{-h} - 1) x0 for DPM-Solver++. */
  private firstOrderUpdate(m0: Float32Array, sample: Float32Array, i: number, noise: Float32Array | undefined): Float32Array {
    const t = alphaSigma(this.sigmas[i + 1]!);
    const s = alphaSigma(this.sigmas[i]!);
    const h = f32(t.lambda - s.lambda);
    let a: number; // coefficient of the sample
    let b: number; // coefficient of the model output
    let n = 0; // coefficient of the noise
    switch (this.algorithm) {
      case 'dpmsolver++':
        a = f32(t.sigma / s.sigma);
        b = -f32(t.alpha * f32(Math.exp(-h) - 1));
        break;
      case 'dpmsolver':
        a = f32(t.alpha / s.alpha);
        b = -f32(t.sigma * f32(Math.exp(h) - 1));
        break;
      case 'sde-dpmsolver++':
        a = f32(f32(t.sigma / s.sigma) * f32(Math.exp(-h)));
        b = f32(t.alpha * f32(1 - f32(Math.exp(-2 * h))));
        n = f32(t.sigma * f32(Math.sqrt(f32(1 - f32(Math.exp(-2 * h))))));
        break;
      case 'sde-dpmsolver':
        a = f32(t.alpha / s.alpha);
        b = -2 * f32(t.sigma * f32(Math.exp(h) - 1));
        n = f32(t.sigma * f32(Math.sqrt(f32(f32(Math.exp(2 * h)) - 1))));
        break;
    }
    return combine(sample, a, [[m0, b]], noise, n);
  }

  /** Order 2 with the previous step's output: D0 = m0, D1 = (m0 - m1) / r0. */
  private secondOrderUpdate(sample: Float32Array, i: number, noise: Float32Array | undefined): Float32Array {
    const [m1, m0] = this.modelOutputs.slice(-2) as [Float32Array, Float32Array];
    const t = alphaSigma(this.sigmas[i + 1]!);
    const s0 = alphaSigma(this.sigmas[i]!);
    const s1 = alphaSigma(this.sigmas[i - 1]!);
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const r0 = f32(h0 / h);
    const d1 = new Float32Array(m0.length);
    for (let j = 0; j < d1.length; j++) d1[j] = (1 / r0) * (m0[j]! - m1[j]!);
    const eMinus = f32(Math.exp(-h));
    const ePlus = f32(Math.exp(h));
    const heun = this.solver === 'heun';
    let a: number;
    let b0: number;
    let b1: number;
    let n = 0;
    switch (this.algorithm) {
      case 'dpmsolver++':
        a = f32(t.sigma / s0.sigma);
        b0 = -f32(t.alpha * f32(eMinus - 1));
        b1 = heun ? f32(t.alpha * f32(f32(f32(eMinus - 1) / h) + 1)) : -0.5 * f32(t.alpha * f32(eMinus - 1));
        break;
      case 'dpmsolver':
        a = f32(t.alpha / s0.alpha);
        b0 = -f32(t.sigma * f32(ePlus - 1));
        b1 = heun ? -f32(t.sigma * f32(f32(f32(ePlus - 1) / h) - 1)) : -0.5 * f32(t.sigma * f32(ePlus - 1));
        break;
      case 'sde-dpmsolver++': {
        const e2 = f32(Math.exp(-2 * h));
        a = f32(f32(t.sigma / s0.sigma) * eMinus);
        b0 = f32(t.alpha * f32(1 - e2));
        b1 = heun ? f32(t.alpha * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1)) : 0.5 * f32(t.alpha * f32(1 - e2));
        n = f32(t.sigma * f32(Math.sqrt(f32(1 - e2))));
        break;
      }
      case 'sde-dpmsolver':
        a = f32(t.alpha / s0.alpha);
        b0 = -2 * f32(t.sigma * f32(ePlus - 1));
        b1 = heun ? -2 * f32(t.sigma * f32(f32(f32(ePlus - 1) / h) - 1)) : -f32(t.sigma * f32(ePlus - 1));
        n = f32(t.sigma * f32(Math.sqrt(f32(f32(Math.exp(2 * h)) - 1))));
        break;
    }
    return combine(sample, a, [[m0, b0], [d1, b1]], noise, n);
  }

  /** Order 3 with the two previous outputs (DPM-Solver(++) only). */
  private thirdOrderUpdate(sample: Float32Array, i: number): Float32Array {
    const [m2, m1, m0] = this.modelOutputs.slice(-3) as [Float32Array, Float32Array, Float32Array];
    const t = alphaSigma(this.sigmas[i + 1]!);
    const s0 = alphaSigma(this.sigmas[i]!);
    const s1 = alphaSigma(this.sigmas[i - 1]!);
    const s2 = alphaSigma(this.sigmas[i - 2]!);
    const h = f32(t.lambda - s0.lambda);
    const r0 = f32(f32(s0.lambda - s1.lambda) / h);
    const r1 = f32(f32(s1.lambda - s2.lambda) / h);
    const len = sample.length;
    const d1 = new Float32Array(len);
    const d2 = new Float32Array(len);
    for (let j = 0; j < len; j++) {
      const d10 = (1 / r0) * (m0[j]! - m1[j]!);
      const d11 = (1 / r1) * (m1[j]! - m2[j]!);
      d1[j] = d10 + (r0 / (r0 + r1)) * (d10 - d11);
      d2[j] = (1 / (r0 + r1)) * (d10 - d11);
    }
    const h2 = f32(h * h);
    if (this.algorithm === 'dpmsolver++') {
      const em = f32(Math.exp(-h));
      return combine(sample, f32(t.sigma / s0.sigma), [
        [m0, -f32(t.alpha * f32(em - 1))],
        [d1, f32(t.alpha * f32(f32(f32(em - 1) / h) + 1))],
        [d2, -f32(t.alpha * f32(f32(f32(f32(em - 1) + h) / h2) - 0.5))],
      ], undefined, 0);
    }
    const ep = f32(Math.exp(h));
    return combine(sample, f32(t.alpha / s0.alpha), [
      [m0, -f32(t.sigma * f32(ep - 1))],
      [d1, -f32(t.sigma * f32(f32(f32(ep - 1) / h) - 1))],
      [d2, -f32(t.sigma * f32(f32(f32(f32(ep - 1) - h) / h2) - 0.5))],
    ], undefined, 0);
  }
}

/** a·sample + Σ coeff·term (one to three terms) + n·noise, elementwise in one pass. */
function combine(sample: Float32Array, a: number, terms: [Float32Array, number][], noise: Float32Array | undefined, n: number): Float32Array {
  const out = new Float32Array(sample.length);
  const [t0, c0] = terms[0]!;
  const [t1, c1] = terms[1] ?? [undefined, 0];
  const [t2, c2] = terms[2] ?? [undefined, 0];
  for (let j = 0; j < out.length; j++) {
    let v = a * sample[j]! + c0 * t0[j]!;
    if (t1) v += c1 * t1[j]!;
    if (t2) v += c2 * t2[j]!;
    if (noise) v += n * noise[j]!;
    out[j] = v;
  }
  return out;
}
