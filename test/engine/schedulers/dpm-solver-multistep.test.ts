// DPMSolverMultistepScheduler: DPM-Solver++(2M) by default, with Karras sigmas, SDE and order-3 variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { DPMSolverMultistepScheduler } from '../../../src/engine/schedulers/dpm-solver-multistep.js';
import { CountingNoise, denoise, latent, maxAbsDiff, sdxl } from './fixtures.js';

test('DPM-Solver++ with SDXL\'s config: leading spacing over num_inference_steps + 1 gives 941, 894, …, 48 for 20 steps', () => {
  const s = new DPMSolverMultistepScheduler(sdxl());
  s.setTimesteps(20);
  assert.equal(s.timesteps.length, 20);
  assert.deepEqual(s.timesteps.slice(0, 3), [941, 894, 847]);
  assert.equal(s.timesteps[19], 48);
  assert.equal(s.sigmas[20], 0);
  assert.equal(s.initNoiseSigma, 1);
});

test('Karras sigmas: 7 steps visit 999, 868, 687, 427, 146, 18, 0', () => {
  const s = new DPMSolverMultistepScheduler(sdxl({ use_karras_sigmas: true }));
  s.setTimesteps(7);
  assert.deepEqual(s.timesteps, [999, 868, 687, 427, 146, 18, 0]);
});

test('with final sigma 0 the last step lands exactly on the model\'s x0 prediction', () => {
  const s = new DPMSolverMultistepScheduler(sdxl({ prediction_type: 'sample' }));
  s.setTimesteps(5);
  let x = latent(16, 3);
  for (const t of s.timesteps.slice(0, 4)) x = s.step(latent(16, 0.5), t, x);
  const x0 = latent(16, 0.25);
  assert.ok(maxAbsDiff(s.step(x0, s.timesteps[4]!, x), x0) < 1e-6);
});

test('an x0-predicting model that always predicts the same x0 converges to it at every order', () => {
  for (const solverOrder of [1, 2, 3]) {
    const s = new DPMSolverMultistepScheduler(sdxl({ prediction_type: 'sample', solver_order: solverOrder }));
    const x0 = latent(16, 0.7);
    const out = denoise(s, 12, latent(16, 3), () => x0);
    assert.ok(maxAbsDiff(out, x0) < 1e-5, `order ${solverOrder}`);
  }
});

test('the first step is first order: it equals the order-1 solver\'s step', () => {
  const second = new DPMSolverMultistepScheduler(sdxl());
  const first = new DPMSolverMultistepScheduler(sdxl({ solver_order: 1 }));
  second.setTimesteps(10);
  first.setTimesteps(10);
  const x = latent(16, 3);
  const eps = latent(16, 0.3);
  assert.deepEqual(second.step(eps, 941, x), first.step(eps, 941, x));
});

test('heun and midpoint solver types differ from the second step on', () => {
  const run = (solverType: string): Float32Array => denoise(new DPMSolverMultistepScheduler(sdxl({ solver_type: solverType })), 10, latent(16, 1), (x) => x.map((v) => 0.3 * Math.tanh(v)));
  assert.ok(maxAbsDiff(run('heun'), run('midpoint')) > 1e-6);
  assert.deepEqual(run('bh2'), run('midpoint'), 'UniPC names map to midpoint, as diffusers');
});

test('sde-dpmsolver++ draws noise on every step and needs a generator', () => {
  const s = new DPMSolverMultistepScheduler(sdxl({ algorithm_type: 'sde-dpmsolver++' }));
  const noise = new CountingNoise(0.5);
  denoise(s, 6, latent(16, 1), (x) => x.map((v) => 0.3 * Math.tanh(v)), noise);
  assert.equal(noise.draws, 6);
  s.setTimesteps(6);
  assert.throws(() => s.step(latent(), s.timesteps[0]!, latent()), (err: unknown) => err instanceof EngineError && err.code === 'missing_generator');
});

test('DPM-Solver (not ++) cannot end at sigma 0: final_sigmas_type must be sigma_min', () => {
  assert.throws(() => new DPMSolverMultistepScheduler(sdxl({ algorithm_type: 'dpmsolver' })), (err: unknown) => err instanceof EngineError && /sigma_min/.test(err.message));
  const s = new DPMSolverMultistepScheduler(sdxl({ algorithm_type: 'dpmsolver', final_sigmas_type: 'sigma_min' }));
  const out = denoise(s, 8, latent(16, 1), (x) => x.map((v) => 0.3 * Math.tanh(v)));
  assert.ok(out.every(Number.isFinite));
});

test('lambda_min_clipped drops the noisiest timesteps of a cosine schedule', () => {
  const clipped = new DPMSolverMultistepScheduler({ beta_schedule: 'squaredcos_cap_v2', lambda_min_clipped: -5.1 });
  const full = new DPMSolverMultistepScheduler({ beta_schedule: 'squaredcos_cap_v2' });
  clipped.setTimesteps(10);
  full.setTimesteps(10);
  assert.ok(clipped.timesteps[0]! < full.timesteps[0]!);
});

test('uniform-λ (use_lu_lambdas) sigmas are evenly spaced in log σ', () => {
  const s = new DPMSolverMultistepScheduler(sdxl({ use_lu_lambdas: true }));
  s.setTimesteps(6);
  const logs = [...s.sigmas.subarray(0, 6)].map(Math.log);
  const gaps = logs.slice(1).map((v, i) => v - logs[i]!);
  assert.ok(gaps.every((g) => Math.abs(g - gaps[0]!) < 1e-5));
});
