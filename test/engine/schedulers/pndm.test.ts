// PNDMScheduler: PLMS with the one-call warm-up (skip_prk_steps) or the Runge–Kutta warm-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DDIMScheduler } from '../../../src/engine/schedulers/ddim.js';
import { PNDMScheduler } from '../../../src/engine/schedulers/pndm.js';
import { latent, maxAbsDiff, sdxl } from './fixtures.js';

test('PNDM with skip_prk_steps repeats the second timestep: 20 steps → 951, 901, 901, 851, …, 1', () => {
  const s = new PNDMScheduler(sdxl());
  s.setTimesteps(20);
  assert.equal(s.timesteps.length, 21);
  assert.deepEqual(s.timesteps.slice(0, 4), [951, 901, 901, 851]);
  assert.equal(s.timesteps[20], 1);
});

test('PNDM without skip_prk_steps (diffusers\' default) starts with 12 Runge–Kutta timesteps', () => {
  const s = new PNDMScheduler();
  s.setTimesteps(10);
  assert.deepEqual(s.timesteps, [900, 850, 850, 800, 800, 750, 750, 700, 700, 650, 650, 600, 600, 500, 400, 300, 200, 100, 0]);
});

test('with a constant ε the first PLMS step is the DDIM step, and the warm-up repeat recomputes it', () => {
  const pndm = new PNDMScheduler(sdxl());
  const ddim = new DDIMScheduler(sdxl());
  pndm.setTimesteps(20);
  ddim.setTimesteps(20);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const first = pndm.step(eps, 951, x);
  assert.ok(maxAbsDiff(first, ddim.step(eps, 951, x)) < 1e-5);
  const repeat = pndm.step(eps, 901, first);
  assert.ok(maxAbsDiff(repeat, first) < 1e-6);
});

test('the Runge–Kutta warm-up runs through the whole schedule', () => {
  const s = new PNDMScheduler(sdxl({ skip_prk_steps: false }));
  s.setTimesteps(10);
  let x = latent(16, 2);
  for (const t of s.timesteps) x = s.step(x.map((v) => 0.3 * Math.tanh(v)), t, x);
  assert.ok(x.every(Number.isFinite));
});
