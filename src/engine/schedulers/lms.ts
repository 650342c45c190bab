/**
 * Linear multistep sampling in sigma (k-diffusion's `sample_lms`, Karras et al. 2022 parametrisation),
 * as diffusers 0.30.3 `LMSDiscreteScheduler`. With x scaled to sigma space (x̂ = x / sqrt(σ² + 1) is what
 * the model sees) and d = (x - x0) / σ the ODE slope:
 *
 *   x_next = x + Σ_k c_k · d_{i-k},   c_k = ∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ
 *
 * where ℓ_k is the Lagrange basis polynomial through the last `order` (≤ 4) sigmas. diffusers integrates
 * with scipy.integrate.quad (epsrel 1e-4); this file uses an adaptive Gauss–Kronrod rule, exact here
 * because ℓ_k is a polynomial of degree ≤ 3.
 */
import {
  addNoiseAtSigma,
  alphasCumprod,
  checkSameLength,
  floatTimesteps,
  indexForTimestep,
  interpAtIndex,
  karrasSigmas,
  logF32,
  makeBetas,
  requireTimesteps,
  scaleBySigma,
  sigmaToT,
  sigmasFromAlphasCumprod,
} from './common.js';
import {
  BETA_PARAMS,
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  resolveConfig,
  type ConfigOf,
  type ConfigSpec,
} from './config.js';
import type { Scheduler } from './types.js';

const NAME = 'LMSDiscreteScheduler';
const f32 = Math.fround;
/** diffusers' default `order` argument of step(). */
const MAX_ORDER = 4;

/** Constructor arguments in diffusers' order, with its defaults. */
export const LMS_CONFIG = {
  ...BETA_PARAMS,
  use_karras_sigmas: { type: 'boolean', default: false },
  prediction_type: { type: 'string', default: 'epsilon', choices: PREDICTION_TYPES },
  timestep_spacing: { type: 'string', default: 'linspace', choices: TIMESTEP_SPACINGS },
  steps_offset: { type: 'int', default: 0 },
} satisfies ConfigSpec;

export type LMSConfig = ConfigOf<typeof LMS_CONFIG>;

export class LMSDiscreteScheduler implements Scheduler {
  readonly name = NAME;
  readonly config: Readonly<Record<string, unknown>>;
  readonly alphasCumprod: Float32Array;
  timesteps: readonly number[] = [];
  sigmas: Float32Array = new Float32Array(0);
  numInferenceSteps: number | undefined;
  private readonly c: LMSConfig;
  /** σ(t) of the training schedule (ascending in t) and its log, float32. */
  private readonly trainSigmas: Float32Array;
  private readonly logSigmas: Float32Array;
  private stepIndex: number | undefined;
  /** ODE slopes of the last MAX_ORDER steps, oldest first. */
  private derivatives: Float32Array[] = [];

  constructor(config: Record<string, unknown> = {}) {
    const { values, record } = resolveConfig(NAME, LMS_CONFIG, config);
    this.c = values;
    this.config = record;
    this.alphasCumprod = alphasCumprod(makeBetas(NAME, values, ['linear', 'scaled_linear', 'squaredcos_cap_v2']));
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.logSigmas = logF32(this.trainSigmas);
    this.setTimesteps(values.num_train_timesteps); // as diffusers' __init__
  }

  /** sigma_max for "linspace"/"trailing" spacings, sqrt(sigma_max² + 1) for "leading" (float32). */
  get initNoiseSigma(): number {
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    return this.c.timestep_spacing === 'linspace' || this.c.timestep_spacing === 'trailing' ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.c;
    let timesteps = floatTimesteps(NAME, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    let sigmas = interpAtIndex(timesteps, this.trainSigmas);
    if (c.use_karras_sigmas) {
      sigmas = karrasSigmas(sigmas[sigmas.length - 1]!, sigmas[0]!, numInferenceSteps);
      // diffusers keeps these float64 (no float32 cast for LMS).
      timesteps = sigmas.map((s) => sigmaToT(s, this.logSigmas));
    }
    this.sigmas = Float32Array.from([...sigmas, 0]);
    this.timesteps = timesteps;
    this.numInferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
    this.derivatives = [];
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    return scaleBySigma(sample, this.sigmas[this.stepIndex]!);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    requireTimesteps(NAME, this.numInferenceSteps);
    checkSameLength(NAME, modelOutput, sample);
    this.stepIndex ??= indexForTimestep(NAME, this.timesteps, timestep);
    const i = this.stepIndex;
    const sigma = this.sigmas[i]!;

    // 1. x0 from the model output, 2. the ODE slope d = (x - x0) / σ.
    const len = sample.length;
    const derivative = new Float32Array(len);
    const vScale = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
    const vSkip = f32(f32(sigma * sigma) + 1);
    for (let j = 0; j < len; j++) {
      const s = sample[j]!;
      const m = modelOutput[j]!;
      const x0 = this.c.prediction_type === 'epsilon' ? s - sigma * m
        : this.c.prediction_type === 'v_prediction' ? m * vScale + s / vSkip
          : m;
      derivative[j] = (s - x0) / sigma;
    }
    this.derivatives.push(derivative);
    if (this.derivatives.length > MAX_ORDER) this.derivatives.shift();

    // 3. Multistep coefficients over the sigmas visited so far.
    const order = Math.min(i + 1, MAX_ORDER);
    const coeffs = Array.from({ length: order }, (_, k) => this.lmsCoefficient(order, i, k));

    // 4. x_next = x + Σ c_k · d_{i-k} (newest slope first).
    const prev = Float32Array.from(sample);
    const d = this.derivatives;
    for (let k = 0; k < order; k++) {
      const slope = d[d.length - 1 - k]!;
      const ck = coeffs[k]!;
      for (let j = 0; j < len; j++) prev[j] = prev[j]! + ck * slope[j]!;
    }
    this.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseAtSigma(NAME, this.sigmas, this.timesteps, original, noise, timestep);
  }

  /** ∫ from σ_t to σ_{t+1} of the Lagrange basis polynomial of node t - k over nodes t, t-1, …, t-order+1. */
  private lmsCoefficient(order: number, t: number, k: number): number {
    const s = this.sigmas;
    const basis = (tau: number): number => {
      let prod = 1;
      for (let j = 0; j < order; j++) {
        if (j === k) continue;
        prod *= (tau - s[t - j]!) / (s[t - k]! - s[t - j]!);
      }
      return prod;
    };
    return integrate(basis, s[t]!, s[t + 1]!, 1e-4);
  }
}

// Gauss–Kronrod 7/15 nodes on [-1, 1] (non-negative half; the rule is symmetric) and weights.
const XGK = [
  0.991455371120812639206854697526329, 0.949107912342758524526189684047851, 0.864864423359769072789712788640926,
  0.741531185599394439863864773280788, 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
  0.207784955007898467600689403773245, 0,
];
const WGK = [
  0.022935322010529224963732008058970, 0.063092092629978553290700663189204, 0.104790010322250183839876322541518,
  0.140653259715525918745189590510238, 0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
  0.204432940075298892414161999234649, 0.209482141084727828012999174891714,
];
/** Gauss 7-point weights, for the nodes XGK[1], XGK[3], XGK[5], XGK[7]. */
const WG = [0.129484966168869693270611432679082, 0.279705391489276667901467771423780, 0.381830050505118944950369775488975, 0.417959183673469387755102040816327];

/** One G7/K15 pass on [a, b]: the Kronrod estimate and |Kronrod - Gauss| as its error. */
function gaussKronrod(f: (x: number) => number, a: number, b: number): { value: number; error: number } {
  const center = (a + b) / 2;
  const half = (b - a) / 2;
  const fc = f(center);
  let kronrod = fc * WGK[7]!;
  let gauss = fc * WG[3]!;
  for (let j = 0; j < 7; j++) {
    const dx = half * XGK[j]!;
    const pair = f(center - dx) + f(center + dx);
    kronrod += WGK[j]! * pair;
    if (j % 2 === 1) gauss += WG[(j - 1) / 2]! * pair;
  }
  return { value: kronrod * half, error: Math.abs((kronrod - gauss) * half) };
}

/**
 * Adaptive quadrature like scipy.integrate.quad (QUADPACK QAG): bisect the interval with the largest
 * error estimate until the total error is below max(1.49e-8, epsrel·|I|) or 50 intervals are used.
 */
export function integrate(f: (x: number) => number, a: number, b: number, epsrel: number, epsabs = 1.49e-8, limit = 50): number {
  const parts = [{ a, b, ...gaussKronrod(f, a, b) }];
  for (;;) {
    const total = parts.reduce((sum, p) => sum + p.value, 0);
    const error = parts.reduce((sum, p) => sum + p.error, 0);
    if (error <= Math.max(epsabs, epsrel * Math.abs(total)) || parts.length >= limit) return total;
    parts.sort((p, q) => q.error - p.error);
    const worst = parts.shift()!;
    const mid = (worst.a + worst.b) / 2;
    parts.push({ a: worst.a, b: mid, ...gaussKronrod(f, worst.a, mid) }, { a: mid, b: worst.b, ...gaussKronrod(f, mid, worst.b) });
  }
}
