// Shared schedule maths: torch / numpy reproduced to the bit where the goldens depend on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { EngineError } from '../../../src/engine/errors.js';
import {
  alphasCumprod,
  floatTimesteps,
  integerTimesteps,
  interpAtIndex,
  karrasSigmas,
  logF32,
  makeBetas,
  rescaleZeroTerminalSnr,
  roundHalfEven,
  sigmaToT,
  sigmasFromAlphasCumprod,
  torchLinspaceF32,
} from '../../../src/engine/schedulers/common.js';
import { golden } from '../../helpers/paths.js';

const SDXL_BETAS = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null };

test('SDXL scaled_linear alphas_cumprod equals the diffusers golden bit for bit', () => {
  const io = SafetensorsFile.open(`${golden('scheduler-ddim')}/io.safetensors`);
  try {
    const expected = io.readFloat32('alphas_cumprod');
    const actual = alphasCumprod(makeBetas('test', SDXL_BETAS, ['scaled_linear']));
    assert.deepEqual(actual, expected);
  } finally {
    io.close();
  }
});

test('torch linspace hits both ends exactly and is evenly spaced', () => {
  const v = torchLinspaceF32(0.0001, 0.02, 1000);
  assert.equal(v[0], Math.fround(0.0001));
  assert.equal(v[999], Math.fround(0.02));
  assert.ok(Math.abs(v[500]! - (0.0001 + (0.02 - 0.0001) * (500 / 999))) < 1e-9);
});

test('squaredcos_cap_v2 betas follow the cosine alpha-bar and are capped at 0.999', () => {
  const betas = makeBetas('test', { ...SDXL_BETAS, beta_schedule: 'squaredcos_cap_v2' }, ['squaredcos_cap_v2']);
  assert.equal(betas.length, 1000);
  assert.equal(betas[999], Math.fround(0.999));
  const bar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  assert.equal(betas[0], Math.fround(1 - bar(0.001) / bar(0)));
});

test('a beta schedule the scheduler does not support is a bad_scheduler_config error naming the choices', () => {
  assert.throws(
    () => makeBetas('DDIMScheduler', { ...SDXL_BETAS, beta_schedule: 'sigmoid' }, ['linear', 'scaled_linear']),
    (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config' && /"linear", "scaled_linear"/.test(err.message),
  );
});

test('trained_betas override the schedule', () => {
  assert.deepEqual(makeBetas('test', { ...SDXL_BETAS, trained_betas: [0.1, 0.2] }, ['linear']), Float32Array.of(0.1, 0.2));
});

test('rescale_zero_terminal_snr drives the last alphas_cumprod to 0 and keeps the first', () => {
  const betas = makeBetas('test', SDXL_BETAS, ['scaled_linear']);
  const rescaled = alphasCumprod(rescaleZeroTerminalSnr(betas));
  assert.equal(rescaled[999], 0);
  assert.ok(Math.abs(rescaled[0]! - alphasCumprod(betas)[0]!) < 1e-6);
});

test('numpy rounding: DDIM linspace timesteps round half to even (7 steps: 999, 832, 666, 500, 333, 166, 0)', () => {
  assert.equal(roundHalfEven(166.5), 166);
  assert.equal(roundHalfEven(499.5), 500);
  assert.equal(roundHalfEven(-0.5), -0);
  assert.deepEqual(integerTimesteps('t', 'linspace', 1000, 7, 0), [999, 832, 666, 500, 333, 166, 0]);
});

test('leading spacing adds steps_offset; trailing spacing starts at the last training step', () => {
  assert.deepEqual(integerTimesteps('t', 'leading', 1000, 4, 1), [751, 501, 251, 1]);
  assert.deepEqual(integerTimesteps('t', 'trailing', 1000, 4, 0), [999, 749, 499, 249]);
  assert.deepEqual(integerTimesteps('t', 'trailing', 1000, 3, 0), [999, 666, 332]);
});

test('k-diffusion linspace timesteps are not rounded (7 steps: 999, 832.5, 666, 499.5, 333, 166.5, 0)', () => {
  assert.deepEqual(floatTimesteps('t', 'linspace', 1000, 7, 0), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
});

test('more inference steps than training steps is a bad_scheduler_steps error', () => {
  assert.throws(() => integerTimesteps('DDIMScheduler', 'leading', 1000, 1001, 0), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_steps');
  assert.throws(() => floatTimesteps('EulerDiscreteScheduler', 'leading', 1000, 0, 0), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_steps');
});

test('an unknown timestep_spacing is a bad_scheduler_config error', () => {
  assert.throws(() => integerTimesteps('DDIMScheduler', 'uniform', 1000, 10, 0), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config');
});

test('np.interp over the sigma table: exact at knots, linear between, clamped outside', () => {
  const fp = Float32Array.of(1, 2, 4);
  assert.deepEqual(interpAtIndex([0, 1, 1.5, 2, 5, -1], fp), [1, 2, 3, 4, 4, 1]);
});

test('Karras sigmas run from sigma_max to sigma_min, evenly spaced in sigma^(1/7)', () => {
  const s = karrasSigmas(0.03, 14.6, 5);
  assert.equal(s.length, 5);
  assert.ok(Math.abs(s[0]! - 14.6) < 1e-12 && Math.abs(s[4]! - 0.03) < 1e-12);
  const roots = s.map((v) => v ** (1 / 7));
  assert.ok(Math.abs(roots[1]! - roots[0]! - (roots[4]! - roots[3]!)) < 1e-12);
});

test('sigma → t inverts the training table (log-linear between entries)', () => {
  const sigmas = sigmasFromAlphasCumprod(alphasCumprod(makeBetas('test', SDXL_BETAS, ['scaled_linear'])));
  const logs = logF32(sigmas);
  assert.equal(sigmaToT(sigmas[500]!, logs), 500);
  assert.equal(sigmaToT(sigmas[999]!, logs), 999);
  assert.equal(sigmaToT(sigmas[0]!, logs), 0);
  const between = sigmaToT(Math.sqrt(sigmas[400]! * sigmas[401]!), logs);
  assert.ok(between > 400.49 && between < 400.51);
});
