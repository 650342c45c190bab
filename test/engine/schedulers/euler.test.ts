// EulerDiscreteScheduler: SDXL's default scheduler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { EulerDiscreteScheduler } from '../../../src/engine/schedulers/euler.js';
import { CountingNoise, latent, maxAbsDiff, sdxl } from './fixtures.js';

test('Euler with SDXL\'s config: 20 leading timesteps 951…1 and init_noise_sigma = sqrt(σ_max² + 1)', () => {
  const s = new EulerDiscreteScheduler(sdxl());
  s.setTimesteps(20);
  assert.deepEqual(s.timesteps, Array.from({ length: 20 }, (_, i) => 951 - 50 * i));
  assert.equal(s.sigmas.length, 21);
  assert.equal(s.sigmas[20], 0);
  const max = s.sigmas[0]!;
  assert.ok(Math.abs(s.initNoiseSigma - Math.sqrt(max * max + 1)) < 1e-5);
});

test('with linspace or trailing spacing init_noise_sigma is σ_max itself', () => {
  for (const spacing of ['linspace', 'trailing']) {
    const s = new EulerDiscreteScheduler(sdxl({ timestep_spacing: spacing }));
    s.setTimesteps(10);
    assert.equal(s.initNoiseSigma, s.sigmas[0]);
    assert.equal(s.timesteps[0], 999);
  }
});

test('the model input is divided by sqrt(σ² + 1)', () => {
  const s = new EulerDiscreteScheduler(sdxl());
  s.setTimesteps(10);
  const t = s.timesteps[0]!;
  const sigma = s.sigmas[0]!;
  const out = s.scaleModelInput(Float32Array.of(2), t);
  assert.ok(Math.abs(out[0]! - 2 / Math.sqrt(sigma * sigma + 1)) < 1e-6);
});

test('a step moves along ε by σ_{i+1} - σ_i', () => {
  const s = new EulerDiscreteScheduler(sdxl());
  s.setTimesteps(10);
  const x = latent(16, 5);
  const eps = latent(16, 0.3);
  const dt = s.sigmas[1]! - s.sigmas[0]!;
  assert.ok(maxAbsDiff(s.step(eps, s.timesteps[0]!, x), x.map((v, i) => v + eps[i]! * dt)) < 1e-5);
});

test('given a generator, step() draws noise on every step (as diffusers) but uses it only with s_churn', () => {
  const run = (noiseValue: number, sChurn: number): { out: Float32Array; draws: number } => {
    const s = new EulerDiscreteScheduler(sdxl());
    s.setTimesteps(5);
    const noise = new CountingNoise(noiseValue);
    let x = latent(16, 5);
    for (const t of s.timesteps) x = s.step(latent(16, 0.2), t, x, { generator: noise, sChurn });
    return { out: x, draws: noise.draws };
  };
  assert.equal(run(1, 0).draws, 5);
  assert.deepEqual(run(1, 0).out, run(-7, 0).out);
  assert.notDeepEqual(run(1, 2).out, run(-7, 2).out);
});

test('a timestep not in the schedule is a bad_timestep error', () => {
  const s = new EulerDiscreteScheduler(sdxl());
  s.setTimesteps(10);
  assert.throws(() => s.scaleModelInput(latent(), 123.25), (err: unknown) => err instanceof EngineError && err.code === 'bad_timestep');
});

test('Karras sigmas span the training range and give fractional float32 timesteps', () => {
  const s = new EulerDiscreteScheduler(sdxl({ use_karras_sigmas: true }));
  s.setTimesteps(10);
  const plain = new EulerDiscreteScheduler(sdxl());
  plain.setTimesteps(10);
  assert.equal(s.sigmas.length, 11);
  assert.ok(s.timesteps.some((t) => !Number.isInteger(t)));
  assert.ok(s.timesteps.every((t) => t === Math.fround(t)));
  assert.ok(Math.abs(s.sigmas[0]! - plain.sigmas[0]!) < 1e-5, 'starts at the interpolated σ_max');
});

test('final_sigmas_type sigma_min ends at the smallest training sigma instead of 0', () => {
  const s = new EulerDiscreteScheduler(sdxl({ final_sigmas_type: 'sigma_min' }));
  s.setTimesteps(10);
  const a0 = s.alphasCumprod[0]!;
  assert.ok(Math.abs(s.sigmas[10]! - Math.sqrt((1 - a0) / a0)) < 1e-7);
});

test('v-prediction with continuous timesteps uses c_noise = log(σ)/4 as the timestep', () => {
  const s = new EulerDiscreteScheduler(sdxl({ prediction_type: 'v_prediction', timestep_type: 'continuous' }));
  s.setTimesteps(4);
  assert.ok(Math.abs(s.timesteps[0]! - 0.25 * Math.log(s.sigmas[0]!)) < 1e-6);
});
