/**
 * Shared schedule maths for the diffusers schedulers (diffusers 0.30.3): beta schedules, alphas_cumprod,
 * timestep spacings, sigma tables (interpolation, Karras, sigma → t) and small stepping helpers.
 *
 * Precision follows the reference, because the goldens are float32 schedules:
 *  - betas / alphas / alphas_cumprod / sigma tables are torch float32 tensors there, so they are built
 *    here with the same float32 rounding (Math.fround after each torch op);
 *  - the parts diffusers computes with numpy in float64 (linspace, arange, interp, Karras) are float64
 *    here too, with numpy's own formulas (numpy rounds half to even; arange fills start + i·delta).
 */
import { EngineError } from '../errors.js';
import type { NoiseSource } from '../rng/seed.js';
import { TIMESTEP_SPACINGS } from './config.js';

const f32 = Math.fround;

// ---------------------------------------------------------------- numpy-compatible helpers

/** numpy's round (half to even), which `.round()` / `np.round` use. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.linspace(start, stop, num)` in float64: start + i·step, with the end point set exactly. */
export function linspace(start: number, stop: number, num: number): number[] {
  const out = new Array<number>(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out[i] = div > 0 ? (step === 0 ? (i / div) * (stop - start) : i * step) + start : start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** `np.arange(start, stop, step)` for floats: length ceil((stop-start)/step), then start + i·((start+step)-start). */
export function arange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Array<number>(length);
  const delta = start + step - start;
  for (let i = 0; i < length; i++) out[i] = i === 0 ? start : i === 1 ? start + step : start + i * delta;
  return out;
}

/**
 * `np.interp(x, arange(len(fp)), fp)`: linear interpolation in float64 over integer knots 0..n-1,
 * with numpy's exact-knot shortcut and clamping outside the table.
 */
export function interpAtIndex(x: readonly number[], fp: ArrayLike<number>): number[] {
  const n = fp.length;
  return x.map((v) => {
    if (!(v > 0)) return fp[0]!;
    if (v >= n - 1) return fp[n - 1]!;
    const j = Math.floor(v);
    if (v === j) return fp[j]!;
    const slope = fp[j + 1]! - fp[j]!;
    return slope * (v - j) + fp[j]!;
  });
}

// ---------------------------------------------------------------- beta schedules

/** Lanes of torch's AVX2 float vectors, which its CPU linspace fills a block at a time. */
const TORCH_VEC_LANES = 8;

/**
 * `torch.linspace(start, end, steps, dtype=float32)` on CPU (x86 AVX2 build), bit for bit: float32
 * start/end/step; the first half counts up from start, the second half down from end. Blocks of two
 * 8-lane vectors are filled as base + k·step from each vector's first element, the tail element-wise;
 * the compiler fuses every a + b·c into one FMA (one rounding), which `f32(a + b * c)` reproduces because
 * b·c is exact in float64. Matches the golden alphas_cumprod exactly; the plain formula is 1 ulp off.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const at = (i: number): number => (i < halfway ? f32(s + step * i) : f32(e - step * (steps - i - 1)));
  let i = 0;
  for (; i <= steps - 2 * TORCH_VEC_LANES; i += 2 * TORCH_VEC_LANES) {
    for (const first of [i, i + TORCH_VEC_LANES]) {
      const base = at(first);
      for (let k = 0; k < TORCH_VEC_LANES; k++) out[first + k] = base + k * step;
    }
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** Glide's cosine schedule: betas from alpha_bar(t) = cos((t + 0.008)/1.008 · π/2)², capped at 0.999 (float64, then float32). */
function squaredCosCapV2(numTrainTimesteps: number): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const betas = new Float32Array(numTrainTimesteps);
  for (let i = 0; i < numTrainTimesteps; i++) {
    const t1 = i / numTrainTimesteps;
    const t2 = (i + 1) / numTrainTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), 0.999);
  }
  return betas;
}

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';

export interface BetaConfig {
  readonly num_train_timesteps: number;
  readonly beta_start: number;
  readonly beta_end: number;
  readonly beta_schedule: string;
  readonly trained_betas: readonly number[] | null;
}

/** The betas a scheduler trains with; `supported` lists the schedules its diffusers class accepts. */
export function makeBetas(className: string, c: BetaConfig, supported: readonly BetaSchedule[]): Float32Array {
  if (c.trained_betas !== null) return Float32Array.from(c.trained_betas);
  const n = c.num_train_timesteps;
  if (!(supported as readonly string[]).includes(c.beta_schedule)) {
    throw new EngineError(
      'bad_scheduler_config',
      `${className}: beta_schedule "${c.beta_schedule}" is not supported; use one of ${supported.map((s) => `"${s}"`).join(', ')}`,
    );
  }
  switch (c.beta_schedule as BetaSchedule) {
    case 'linear':
      return torchLinspaceF32(c.beta_start, c.beta_end, n);
    case 'scaled_linear': {
      // Latent diffusion's schedule: linear in sqrt(beta), squared (torch float32 ** 2 is x·x).
      const roots = torchLinspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), n);
      return roots.map((r) => r * r);
    }
    case 'squaredcos_cap_v2':
      return squaredCosCapV2(n);
    case 'sigmoid': {
      const x = torchLinspaceF32(-6, 6, n);
      return x.map((v) => f32(f32(1 / (1 + Math.exp(-v))) * f32(c.beta_end - c.beta_start)) + c.beta_start);
    }
  }
}

/** cumprod of (1 - betas): torch accumulates a float32 cumprod in double on CPU and rounds each output. */
export function alphasCumprod(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= f32(1 - betas[i]!);
    out[i] = acc;
  }
  return out;
}

/**
 * Rescales betas to zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
 * are Flawed", Algorithm 1): shift and scale sqrt(alphas_cumprod) so the last is 0 and the first unchanged.
 * float32 throughout, as diffusers.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const sqrtBar = alphasCumprod(betas).map(Math.sqrt);
  const first = sqrtBar[0]!;
  const last = sqrtBar[sqrtBar.length - 1]!;
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((v) => {
    const s = f32(f32(v - last) * scale);
    return s * s;
  });
  const out = new Float32Array(betas.length);
  out[0] = f32(1 - bar[0]!);
  for (let i = 1; i < bar.length; i++) out[i] = f32(1 - f32(bar[i]! / bar[i - 1]!));
  return out;
}

/** sigma(t) = sqrt((1 - ᾱ_t) / ᾱ_t), float32 like the torch expression, ascending in t. */
export function sigmasFromAlphasCumprod(ac: Float32Array): Float32Array {
  return ac.map((a) => Math.sqrt(f32(f32(1 - a) / a)));
}

// ---------------------------------------------------------------- timestep spacings

/**
 * Integer timesteps of DDIM / DDPM ("linspace", "leading", "trailing": Table 2 of Lin et al. 2023),
 * descending. `leading` adds steps_offset; `trailing` ends at N-1.
 */
export function integerTimesteps(className: string, spacing: string, numTrain: number, n: number, stepsOffset: number): number[] {
  checkStepCount(className, n, numTrain);
  switch (spacing) {
    case 'linspace':
      return linspace(0, numTrain - 1, n).map(roundHalfEven).reverse();
    case 'leading': {
      const ratio = Math.floor(numTrain / n);
      return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
    }
    case 'trailing':
      return arange(numTrain, 0, -numTrain / n).map((t) => roundHalfEven(t) - 1);
    default:
      throw badSpacing(className, spacing);
  }
}

/**
 * Float timesteps of the k-diffusion family (Euler, Euler ancestral, LMS), descending and float32:
 * `linspace` is NOT rounded there, so 7 steps give 999, 832.5, ….
 */
export function floatTimesteps(className: string, spacing: string, numTrain: number, n: number, stepsOffset: number): number[] {
  checkStepCount(className, n, Infinity);
  switch (spacing) {
    case 'linspace':
      return linspace(0, numTrain - 1, n).map(f32).reverse();
    case 'leading': {
      const ratio = Math.floor(numTrain / n);
      return Array.from({ length: n }, (_, i) => f32((n - 1 - i) * ratio + stepsOffset));
    }
    case 'trailing':
      return arange(numTrain, 0, -numTrain / n).map((t) => f32(roundHalfEven(t) - 1));
    default:
      throw badSpacing(className, spacing);
  }
}

export function checkStepCount(className: string, n: number, max: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new EngineError('bad_scheduler_steps', `${className}: num_inference_steps must be a whole number >= 1, got ${n}`);
  }
  if (n > max) {
    throw new EngineError(
      'bad_scheduler_steps',
      `${className}: num_inference_steps ${n} cannot be larger than num_train_timesteps ${max}`,
    );
  }
}

function badSpacing(className: string, spacing: string): EngineError {
  return new EngineError(
    'bad_scheduler_config',
    `${className}: timestep_spacing "${spacing}" is not supported; use one of ${TIMESTEP_SPACINGS.map((s) => `"${s}"`).join(', ')}`,
  );
}

// ---------------------------------------------------------------- sigma tables

/** Karras et al. (2022) eq. 5: sigmas evenly spaced in sigma^(1/rho) from sigmaMax down to sigmaMin (float64). */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7): number[] {
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return linspace(0, 1, n).map((r) => (maxInvRho + r * (minInvRho - maxInvRho)) ** rho);
}

/** log of a float32 table, as float32 (`np.log` of a float32 array). */
export function logF32(values: Float32Array): Float32Array {
  return values.map(Math.log);
}

/**
 * The (fractional) training timestep whose log-sigma matches `sigma`, interpolating linearly in log-sigma
 * between table entries (diffusers' `_sigma_to_t`). numpy mixes float32 and float64 there; the float32
 * roundings are kept so that rounded timesteps agree.
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const logSigma32 = f32(logSigma);
  let count = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma32 >= logSigmas[i]!) count++;
  const low = Math.min(Math.max(count - 1, 0), logSigmas.length - 2);
  const lo = logSigmas[low]!;
  const hi = logSigmas[low + 1]!;
  const w = Math.min(Math.max(f32(f32(lo - logSigma32) / f32(lo - hi)), 0), 1);
  return f32(1 - w) * low + w * (low + 1);
}

// ---------------------------------------------------------------- stepping helpers

/**
 * Position of `timestep` in a schedule, as diffusers' `index_for_timestep`: the second match when the value
 * repeats (so img2img starting mid-schedule does not skip a sigma). `fallbackToLast` is DPM-Solver's rule
 * for a timestep not in the schedule.
 */
export function indexForTimestep(className: string, timesteps: readonly number[], timestep: number, fallbackToLast = false): number {
  const first = timesteps.indexOf(timestep);
  if (first < 0) {
    if (fallbackToLast) return timesteps.length - 1;
    throw new EngineError('bad_timestep', `${className}: timestep ${timestep} is not in the schedule; pass one of scheduler.timesteps`);
  }
  const second = timesteps.indexOf(timestep, first + 1);
  return second >= 0 ? second : first;
}

export function requireTimesteps(className: string, numInferenceSteps: number | undefined): number {
  if (numInferenceSteps === undefined) {
    throw new EngineError('scheduler_not_ready', `${className}: call setTimesteps(numInferenceSteps) before stepping`);
  }
  return numInferenceSteps;
}

/** Draws step() noise shaped like the sample; fails with an actionable message when no generator was given. */
export function drawNoise(className: string, generator: NoiseSource | undefined, shape: readonly number[] | undefined, length: number): Float32Array {
  if (!generator) {
    throw new EngineError('missing_generator', `${className}.step() needs a noise generator here: pass { generator } in the step options`);
  }
  const noise = generator.randn(shape ?? [length]);
  if (noise.length !== length) {
    throw new EngineError('bad_shape', `${className}: noise of ${noise.length} elements drawn for a sample of ${length}`);
  }
  return noise;
}

export function checkSameLength(className: string, a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) {
    throw new EngineError('bad_shape', `${className}.step(): model output has ${a.length} elements, sample has ${b.length}`);
  }
}

/**
 * Dynamic thresholding (Imagen, Saharia et al. 2022): per batch item, s = the `ratio` quantile of |x0|
 * clamped to [1, maxValue]; x0 is clamped to [-s, s] and divided by s. torch.quantile's linear rule.
 */
export function thresholdSample(sample: Float32Array, ratio: number, maxValue: number, batch: number): Float32Array {
  const out = new Float32Array(sample.length);
  const per = sample.length / batch;
  for (let b = 0; b < batch; b++) {
    const item = sample.subarray(b * per, (b + 1) * per);
    const sorted = Float64Array.from(item, Math.abs).sort();
    const pos = ratio * (per - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, per - 1);
    const q = sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
    const s = Math.min(Math.max(q, 1), maxValue);
    for (let i = 0; i < per; i++) out[b * per + i] = Math.min(Math.max(item[i]!, -s), s) / s;
  }
  return out;
}

/** ᾱ_t at an integer training timestep; anything else is a clear error. */
export function alphaAtTimestep(className: string, alphasCumprod: Float32Array, t: number): number {
  const a = Number.isInteger(t) ? alphasCumprod[t] : undefined;
  if (a === undefined) {
    throw new EngineError('bad_timestep', `${className}: timestep ${t} is not an integer in 0..${alphasCumprod.length - 1}`);
  }
  return a;
}

/** √ᾱ_t·x + √(1−ᾱ_t)·ε at an integer training timestep (DDIM, DDPM, PNDM's add_noise). */
export function addNoiseAtAlpha(className: string, alphasCumprod: Float32Array, original: Float32Array, noise: Float32Array, t: number): Float32Array {
  const a = alphaAtTimestep(className, alphasCumprod, t);
  const sqrtA = Math.fround(Math.sqrt(a));
  const sqrtOneMinusA = Math.fround(Math.sqrt(Math.fround(1 - a)));
  return original.map((x, i) => sqrtA * x + sqrtOneMinusA * noise[i]!);
}

/** x + σ·ε at the step of `timestep` (the sigma-space schedulers' add_noise). */
export function addNoiseAtSigma(className: string, sigmas: Float32Array, timesteps: readonly number[], original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
  const sigma = sigmas[indexForTimestep(className, timesteps, timestep)]!;
  return original.map((x, j) => x + noise[j]! * sigma);
}

/** x / √(σ² + 1): the sigma-space schedulers' scale_model_input. */
export function scaleBySigma(sample: Float32Array, sigma: number): Float32Array {
  const f = Math.fround;
  const scale = f(Math.sqrt(f(f(sigma * sigma) + 1)));
  return sample.map((x) => x / scale);
}

// ---------------------------------------------------------------- consistency-distilled schedules (LCM, TCD)

/**
 * The timesteps of LCM / TCD's `set_timesteps`: the distillation schedule origin_i = i·k − 1 (i = 1..original
 * steps, k = num_train // original steps; every training timestep when `originalSteps` is null, TCD only),
 * reversed, then `n` of them at indices floor(np.linspace(0, len, n, endpoint=False)).
 */
export function distilledTimesteps(className: string, numTrain: number, originalSteps: number | null, n: number): number[] {
  checkStepCount(className, n, numTrain);
  let origin: number[];
  if (originalSteps !== null) {
    if (!Number.isSafeInteger(originalSteps) || originalSteps < 1 || originalSteps > numTrain) {
      throw new EngineError('bad_scheduler_config', `${className}: original_inference_steps must be a whole number in 1..${numTrain}, got ${originalSteps}`);
    }
    if (n > originalSteps) {
      throw new EngineError(
        'bad_scheduler_steps',
        `${className}: num_inference_steps ${n} cannot be larger than original_inference_steps ${originalSteps} (the schedule is a subset of the distillation schedule)`,
      );
    }
    const k = Math.floor(numTrain / originalSteps);
    origin = Array.from({ length: originalSteps }, (_, i) => (i + 1) * k - 1);
  } else {
    origin = Array.from({ length: numTrain }, (_, i) => i);
  }
  origin.reverse();
  // np.linspace(0, len, n, endpoint=False): start + i·(len / n), floored.
  const step = origin.length / n;
  return Array.from({ length: n }, (_, i) => origin[Math.floor(i * step)]!);
}

/** x0 and ε from a model output by prediction type (the ᾱ_t parametrisations DDIM, LCM and TCD share). */
export function predictOriginalAndEpsilon(
  predictionType: string,
  alphaProdT: number,
  sample: Float32Array,
  modelOutput: Float32Array,
): { x0: Float32Array; eps: Float32Array } {
  const sqrtAlpha = f32(Math.sqrt(alphaProdT));
  const sqrtBeta = f32(Math.sqrt(f32(1 - alphaProdT)));
  const len = sample.length;
  const x0 = new Float32Array(len);
  const eps = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    const s = sample[i]!;
    const m = modelOutput[i]!;
    switch (predictionType) {
      case 'epsilon':
        x0[i] = f32(s - f32(sqrtBeta * m)) / sqrtAlpha;
        eps[i] = m;
        break;
      case 'sample':
        x0[i] = m;
        eps[i] = f32(s - f32(sqrtAlpha * m)) / sqrtBeta;
        break;
      default: // v_prediction
        x0[i] = f32(sqrtAlpha * s) - f32(sqrtBeta * m);
        eps[i] = f32(sqrtAlpha * m) + f32(sqrtBeta * s);
    }
  }
  return { x0, eps };
}
