// Golden kind `scheduler`: a diffusers scheduler's stepping loop driven by a deterministic stand-in model.
// Everything is read from the case: the config (any scheduler, any options), the runs (every `nN.` prefix
// in io.safetensors), the stand-in formula (any expression of the goldens' grammar, ../stand-in.ts) and step() keyword arguments (case.json `loop`). Per run it
// checks timesteps, sigmas, init_noise_sigma, x_init, then every step's model_input (when stored) and
// prev_sample, feeding our own sample forward. Noise drawn by step() is replayed from the recorded
// `nN.stepII.noise`; the generator named in the notes is also checked to reproduce those draws.
import type { GoldenCase, Tolerance } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { TorchGenerator } from '../../rng/torch-cpu.js';
import { createScheduler } from '../../schedulers/index.js';
import type { NoiseSource, StepOptions } from '../../schedulers/types.js';
import type { SafetensorsFile } from '../../formats/safetensors.js';
import { standInModel, type StandIn } from '../stand-in.js';

/** Float timesteps are judged by an absolute 1e-4 (case.json's metric); integer ones exactly. */
const FLOAT_TIMESTEP_TOLERANCE: Tolerance = { atol: 1e-4, rtol: 0 };
/** torch CPU randn should be reproduced bit-exactly; README allows 1e-6. */
const RNG_TOLERANCE: Tolerance = { atol: 1e-6, rtol: 0 };

/**
 * step() keyword arguments besides eps, t, x and generator, mapped onto StepOptions. A value may be a Python
 * literal or `runs[N].<key>`: the named entry of this run's record in case.json `loop.runs`.
 */
function parseStepKwargs(stepCall: unknown, run: Readonly<Record<string, unknown>> = {}): StepOptions {
  if (typeof stepCall !== 'string') return {};
  const args = /\.step\((.*)\)/.exec(stepCall)?.[1] ?? '';
  const options: StepOptions = {};
  const names: Record<string, keyof StepOptions> = {
    eta: 'eta', s_churn: 'sChurn', s_tmin: 'sTmin', s_tmax: 'sTmax', s_noise: 'sNoise', use_clipped_model_output: 'useClippedModelOutput',
  };
  for (const [, key, raw] of args.matchAll(/(\w+)\s*=\s*([^,]+)/g)) {
    if (key === 'generator' || key === 'return_dict') continue;
    const option = names[key!];
    if (!option) throw new Error(`unsupported step() argument ${key} in ${JSON.stringify(stepCall)}`);
    const value = raw!.trim();
    const fromRun = /^runs\[N\]\.(\w+)$/.exec(value)?.[1];
    if (fromRun !== undefined) {
      const v = run[fromRun];
      if (typeof v !== 'number' && typeof v !== 'boolean') throw new Error(`step() argument ${key}=${value}: loop.runs has no number ${fromRun} for this run`);
      (options as Record<string, unknown>)[option] = v;
      continue;
    }
    const parsed = value === 'True' ? true : value === 'False' ? false : value === "float('inf')" ? Infinity : Number(value);
    if (typeof parsed === 'number' && Number.isNaN(parsed)) throw new Error(`cannot read step() argument ${key}=${value}`);
    (options as Record<string, unknown>)[option] = parsed;
  }
  return options;
}

function seedOf(text: unknown): string | undefined {
  return typeof text === 'string' ? /manual_seed\((\d+)\)/.exec(text)?.[1] : undefined;
}

function stepName(n: number, i: number, what: string): string {
  return `n${n}.step${String(i).padStart(2, '0')}.${what}`;
}

function compareTimesteps(io: SafetensorsFile, name: string, actual: readonly number[]): Check {
  if (io.info(name).dtype === 'I64') return compareExact(name, actual, io.read(name) as BigInt64Array);
  return compareClose(name, actual, io.readFloat32(name), FLOAT_TIMESTEP_TOLERANCE);
}

/**
 * step()'s noise source. At a step where the reference drew noise it returns the recorded tensor (so the
 * step maths is checked on its own); a draw the reference made but did not store (it went unused, e.g.
 * EulerDiscrete without churn) gets the generator's own draw. The generator named in the case is advanced
 * on every draw and must reproduce each recorded tensor. A draw where the reference drew none is an error.
 */
class RecordedNoise implements NoiseSource {
  step = 0;
  readonly drawnAt: number[] = [];
  readonly checks: Check[] = [];
  constructor(
    private readonly n: number,
    private readonly recorded: ReadonlyMap<number, Float32Array>,
    private readonly expectedDraws: readonly number[],
    private readonly generator: { seed: string; randn(shape: readonly number[]): Float32Array } | undefined,
  ) {}

  randn(shape: readonly number[]): Float32Array {
    const i = this.step;
    if (!this.expectedDraws.includes(i)) throw new Error(`step() drew noise at step ${i}, where the reference drew none`);
    if (this.drawnAt.includes(i)) throw new Error(`step() drew noise twice at step ${i}`);
    this.drawnAt.push(i);
    const generated = this.generator?.randn(shape);
    const recorded = this.recorded.get(i);
    if (recorded && generated) {
      this.checks.push(compareClose(`${stepName(this.n, i, 'noise')} = TorchGenerator(${this.generator!.seed}).randn`, generated, recorded, RNG_TOLERANCE));
    } else if (recorded) {
      // The recorded noise was fed in as input; without a generator to reproduce it, it is unjudged.
      this.checks.push({ name: stepName(this.n, i, 'noise'), maxAbsError: Infinity, allowed: 0, pass: false, note: 'recorded noise, but the case names no generator seed to reproduce it' });
    }
    const noise = recorded ?? generated;
    if (!noise) throw new Error(`step() drew noise at step ${i}; the reference did not store it and names no generator`);
    return noise;
  }
}

/** Per-step tensors that are not step() outputs: the rest (`denoised`, `pred_noised_sample`, …) are judged against StepOutput.extras. */
const STEP_INPUT_NAMES = new Set(['prev_sample', 'noise', 'model_input']);

function evaluateRun(c: GoldenCase, n: number, x: Float32Array, shape: number[], standIn: StandIn, stepCall: unknown): Check[] {
  const io = c.io();
  const tol = c.tolerance;
  const checks: Check[] = [];
  const has = (name: string): boolean => io.has(name);
  const scheduler = createScheduler(c.config);
  scheduler.setTimesteps(n);

  checks.push(compareTimesteps(io, `n${n}.timesteps`, scheduler.timesteps));
  if (has(`n${n}.sigmas`)) checks.push(compareClose(`n${n}.sigmas`, scheduler.sigmas ?? [], io.readFloat32(`n${n}.sigmas`), tol));
  if (has(`n${n}.init_noise_sigma`)) {
    checks.push(compareClose(`n${n}.init_noise_sigma`, [scheduler.initNoiseSigma], io.readFloat32(`n${n}.init_noise_sigma`), tol));
  }
  let sample: Float32Array = x.map((v) => v * scheduler.initNoiseSigma);
  if (has(`n${n}.x_init`)) checks.push(compareClose(`n${n}.x_init`, sample, io.readFloat32(`n${n}.x_init`), tol));

  const stepsRecorded = io.names().filter((name) => name.startsWith(`n${n}.step`) && name.endsWith('.prev_sample')).length;
  if (stepsRecorded !== scheduler.timesteps.length) {
    checks.push({ name: `n${n}.steps`, maxAbsError: Math.abs(stepsRecorded - scheduler.timesteps.length), allowed: 0, pass: false, note: `${scheduler.timesteps.length} timesteps, the reference ran ${stepsRecorded} steps` });
  }

  const recorded = new Map<number, Float32Array>();
  for (let i = 0; i < scheduler.timesteps.length; i++) {
    if (has(stepName(n, i, 'noise'))) recorded.set(i, io.readFloat32(stepName(n, i, 'noise')));
  }
  const loop = (c.json.loop ?? {}) as { generator?: unknown; runs?: Record<string, Record<string, unknown>> };
  const kwargs = parseStepKwargs(stepCall, loop.runs?.[String(n)]);
  const listed = loop.runs?.[String(n)]?.steps_that_drew_noise;
  const expectedDraws = Array.isArray(listed) ? (listed as number[]) : [...recorded.keys()];
  const seed = seedOf(loop.generator);
  const generator = seed === undefined ? undefined : Object.assign(new TorchGenerator(seed), { seed });
  const noise = new RecordedNoise(n, recorded, expectedDraws, generator);
  try {
    scheduler.timesteps.forEach((t, i) => {
      noise.step = i;
      const modelInput = scheduler.scaleModelInput(sample, t);
      if (has(stepName(n, i, 'model_input'))) {
        checks.push(compareClose(stepName(n, i, 'model_input'), modelInput, io.readFloat32(stepName(n, i, 'model_input')), tol));
      }
      const eps = standIn(modelInput, t);
      const options = { ...kwargs, generator: noise, shape };
      const output = scheduler.stepOutput ? scheduler.stepOutput(eps, t, sample, options) : { prevSample: scheduler.step(eps, t, sample, options), extras: {} };
      sample = output.prevSample;
      if (has(stepName(n, i, 'prev_sample'))) {
        checks.push(compareClose(stepName(n, i, 'prev_sample'), sample, io.readFloat32(stepName(n, i, 'prev_sample')), tol));
      }
      const prefix = stepName(n, i, '');
      for (const name of io.names()) {
        const field = name.startsWith(prefix) ? name.slice(prefix.length) : undefined;
        if (field === undefined || STEP_INPUT_NAMES.has(field)) continue;
        const actual = (output.extras as Record<string, Float32Array | undefined>)[field];
        checks.push(actual
          ? compareClose(name, actual, io.readFloat32(name), tol)
          : { name, maxAbsError: Infinity, allowed: 0, pass: false, note: `${scheduler.name}.step() has no output named ${field}` });
      }
    });
  } catch (err) {
    checks.push({ name: stepName(n, noise.step, 'prev_sample'), maxAbsError: Infinity, allowed: 0, pass: false, note: (err as Error).message });
  }
  checks.push(compareExact(`n${n}.steps_that_drew_noise`, noise.drawnAt, expectedDraws), ...noise.checks);
  return checks;
}

export function evaluate(c: GoldenCase): Check[] {
  const io = c.io();
  const loop = (c.json.loop ?? {}) as Record<string, unknown>;
  const standIn = standInModel(loop.stand_in_model);
  const x = io.readFloat32('x');
  const shape = io.info('x').shape;
  const checks: Check[] = [];

  // The starting sample is itself a seeded torch draw: check the generator reproduces it.
  const xSeed = seedOf(loop.x_source);
  if (xSeed !== undefined && /torch\.randn\(/.test(String(loop.x_source))) {
    checks.push(compareClose(`x = TorchGenerator(${xSeed}).randn`, new TorchGenerator(xSeed).randn(shape), x, RNG_TOLERANCE));
  }

  const runs = [...new Set(io.names().flatMap((name) => /^n(\d+)\./.exec(name)?.[1] ?? []))].map(Number).sort((a, b) => b - a);
  if (runs.length === 0) throw new Error('io.safetensors has no nN.* runs');
  for (const n of runs) checks.push(...evaluateRun(c, n, x, shape, standIn, loop.step_call));

  if (io.has('alphas_cumprod')) {
    checks.push(compareClose('alphas_cumprod', createScheduler(c.config).alphasCumprod ?? [], io.readFloat32('alphas_cumprod'), c.tolerance));
  }
  return checks;
}
