// EulerAncestralDiscreteScheduler: Euler down to σ_down plus fresh noise σ_up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { EulerAncestralDiscreteScheduler } from '../../../src/engine/schedulers/euler-ancestral.js';
import { CountingNoise, latent, sdxl } from './fixtures.js';

test('Euler ancestral with SDXL\'s config has Euler\'s schedule (951…1, 21 sigmas ending at 0)', () => {
  const s = new EulerAncestralDiscreteScheduler(sdxl());
  s.setTimesteps(20);
  assert.equal(s.timesteps[0], 951);
  assert.equal(s.sigmas.length, 21);
  assert.ok(Math.abs(s.initNoiseSigma - 11.0736) < 1e-4);
});

test('each step draws noise and adds σ_up·z, with σ_up² + σ_down² = σ_{i+1}²', () => {
  const s = new EulerAncestralDiscreteScheduler(sdxl());
  s.setTimesteps(10);
  const t = s.timesteps[0]!;
  const x = latent(16, 5);
  const eps = latent(16, 0.3);
  const withZero = s.step(eps, t, x, { generator: new CountingNoise(0) });
  s.setTimesteps(10);
  const withOne = s.step(eps, t, x, { generator: new CountingNoise(1) });
  const [from, to] = [s.sigmas[0]!, s.sigmas[1]!];
  const up = Math.sqrt((to * to * (from * from - to * to)) / (from * from));
  assert.ok(Math.abs(withOne[0]! - withZero[0]! - up) < 1e-5);
  const down = Math.sqrt(to * to - up * up);
  assert.ok(Math.abs(withZero[0]! - (x[0]! + eps[0]! * (down - from))) < 1e-5);
});

test('the last step still draws noise but adds none (σ_up = 0)', () => {
  const s = new EulerAncestralDiscreteScheduler(sdxl());
  s.setTimesteps(3);
  const noise = new CountingNoise(100);
  let x = latent(16, 5);
  for (const t of s.timesteps.slice(0, 2)) x = s.step(latent(16, 0.1), t, x, { generator: noise });
  const last = s.timesteps[2]!;
  const a = s.step(latent(16, 0.1), last, x, { generator: noise });
  assert.equal(noise.draws, 3);
  s.setTimesteps(3);
  for (const t of s.timesteps.slice(0, 2)) s.step(latent(16, 0.1), t, latent(16, 5), { generator: noise });
  assert.deepEqual(a, s.step(latent(16, 0.1), last, x, { generator: new CountingNoise(-100) }));
});

test('stepping without a generator is a missing_generator error', () => {
  const s = new EulerAncestralDiscreteScheduler(sdxl());
  s.setTimesteps(3);
  assert.throws(() => s.step(latent(), s.timesteps[0]!, latent()), (err: unknown) => err instanceof EngineError && err.code === 'missing_generator');
});

test('prediction_type "sample" (not implemented by diffusers\' step) is refused at construction', () => {
  assert.throws(() => new EulerAncestralDiscreteScheduler(sdxl({ prediction_type: 'sample' })), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config');
});
