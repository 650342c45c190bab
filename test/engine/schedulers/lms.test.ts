// LMSDiscreteScheduler: linear multistep in sigma, coefficients by quadrature.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EulerDiscreteScheduler } from '../../../src/engine/schedulers/euler.js';
import { LMSDiscreteScheduler, integrate } from '../../../src/engine/schedulers/lms.js';
import { latent, maxAbsDiff, sdxl } from './fixtures.js';

test('LMS with SDXL\'s config: sigmas and init_noise_sigma as Euler\'s (sqrt(σ_max² + 1) = 11.0736 for 20 steps)', () => {
  const lms = new LMSDiscreteScheduler(sdxl());
  const euler = new EulerDiscreteScheduler(sdxl());
  lms.setTimesteps(20);
  euler.setTimesteps(20);
  assert.deepEqual(lms.sigmas, euler.sigmas);
  assert.deepEqual(lms.timesteps, euler.timesteps);
  assert.ok(Math.abs(lms.initNoiseSigma - 11.0736) < 1e-4);
});

test('the first LMS step has order 1 and equals the Euler step', () => {
  const lms = new LMSDiscreteScheduler(sdxl());
  const euler = new EulerDiscreteScheduler(sdxl());
  lms.setTimesteps(10);
  euler.setTimesteps(10);
  const x = latent(16, 10);
  const eps = latent(16, 0.3);
  const t = lms.timesteps[0]!;
  lms.scaleModelInput(x, t);
  euler.scaleModelInput(x, t);
  assert.ok(maxAbsDiff(lms.step(eps, t, x), euler.step(eps, t, x)) < 1e-5);
});

test('a constant slope is integrated exactly by every order: x moves by ε·(σ_{i+1} - σ_i) each step', () => {
  const s = new LMSDiscreteScheduler(sdxl());
  s.setTimesteps(8);
  let x = latent(16, 10);
  const eps = new Float32Array(16).fill(0.5);
  for (const [i, t] of s.timesteps.entries()) {
    s.scaleModelInput(x, t);
    const next = s.step(eps, t, x);
    const moved = next[0]! - x[0]!;
    assert.ok(Math.abs(moved - 0.5 * (s.sigmas[i + 1]! - s.sigmas[i]!)) < 1e-4, `step ${i}`);
    x = next;
  }
});

test('LMS with Karras sigmas spans the spaced schedule (901 → 1 for 10 SDXL steps) with float64 timesteps', () => {
  const s = new LMSDiscreteScheduler(sdxl({ use_karras_sigmas: true }));
  s.setTimesteps(10);
  assert.equal(s.timesteps.length, 10);
  assert.ok(Math.abs(s.timesteps[0]! - 901) < 1e-6);
  assert.ok(Math.abs(s.timesteps[9]! - 1) < 1e-6);
  assert.ok(s.timesteps.some((t) => t !== Math.fround(t)), 'not rounded to float32');
  assert.ok(s.timesteps.some((t) => !Number.isInteger(t)));
  assert.equal(s.sigmas[10], 0);
});

test('adaptive quadrature: exact for cubics, within epsrel for a square root', () => {
  assert.ok(Math.abs(integrate((x) => x ** 3 - 2 * x, 0.5, 3, 1e-4) - (3 ** 4 / 4 - 9 - (0.5 ** 4 / 4 - 0.25))) < 1e-12);
  assert.ok(Math.abs(integrate(Math.sqrt, 0, 1, 1e-6) - 2 / 3) < 1e-6);
  assert.ok(Math.abs(integrate((x) => x * x, 2, 1, 1e-4) - -(7 / 3)) < 1e-12, 'reversed bounds give the negative');
});
