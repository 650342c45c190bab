// LCMScheduler and TCDScheduler: the consistency-distilled schedules of LCM-LoRA and TCD-LoRA on SDXL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { distilledTimesteps } from '../../../src/engine/schedulers/common.js';
import { LCMScheduler, lcmBoundaryScalings } from '../../../src/engine/schedulers/lcm.js';
import { TCDScheduler } from '../../../src/engine/schedulers/tcd.js';
import { CountingNoise, latent, maxAbsDiff, sdxl } from './fixtures.js';

test('the distilled schedule takes evenly spaced indices of 999, 979, …, 19 (k = 1000 // 50)', () => {
  assert.deepEqual(distilledTimesteps('t', 1000, 50, 4), [999, 759, 499, 259]);
  assert.deepEqual(distilledTimesteps('t', 1000, 50, 1), [999]);
  assert.deepEqual(distilledTimesteps('t', 1000, 50, 50), Array.from({ length: 50 }, (_, i) => 999 - 20 * i));
  // 7 steps: floor(i · 50/7) = 0, 7, 14, 21, 28, 35, 42.
  assert.deepEqual(distilledTimesteps('t', 1000, 50, 7), [0, 7, 14, 21, 28, 35, 42].map((j) => 999 - 20 * j));
  // TCD without original_inference_steps walks every training timestep.
  assert.deepEqual(distilledTimesteps('t', 1000, null, 4), [999, 749, 499, 249]);
});

test('more steps than the distillation schedule has is a bad_scheduler_steps error', () => {
  assert.throws(() => new LCMScheduler(sdxl()).setTimesteps(51), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_steps' && /original_inference_steps 50/.test(err.message));
});

test('LCM defaults are diffusers\': scaled_linear 0.00085..0.012, 50 original steps, timestep scaling 10', () => {
  const s = new LCMScheduler();
  assert.equal(s.config.beta_schedule, 'scaled_linear');
  assert.equal(s.config.original_inference_steps, 50);
  assert.equal(s.config.timestep_scaling, 10);
  assert.equal(s.initNoiseSigma, 1);
});

test('the boundary scalings make the consistency function the identity at t = 0 and x0 at large t', () => {
  assert.deepEqual(lcmBoundaryScalings(0, 10), { cSkip: 1, cOut: 0 });
  const { cSkip, cOut } = lcmBoundaryScalings(999, 10);
  assert.ok(cSkip < 1e-8 && Math.abs(cOut - 1) < 1e-7);
});

test('an LCM step re-noises the denoised estimate to the next timestep; the last step returns it and draws nothing', () => {
  const s = new LCMScheduler(sdxl());
  s.setTimesteps(2);
  assert.deepEqual(s.timesteps, [999, 499]);
  const noise = new CountingNoise(0.5);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const first = s.stepOutput(eps, 999, x, { generator: noise });
  const a = s.alphasCumprod[999]!;
  const ap = s.alphasCumprod[499]!;
  const { cSkip, cOut } = lcmBoundaryScalings(999, 10);
  const denoised = x.map((v, i) => cOut * ((v - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a)) + cSkip * v);
  assert.ok(maxAbsDiff(first.extras.denoised!, denoised) < 1e-5);
  assert.ok(maxAbsDiff(first.prevSample, denoised.map((d) => Math.sqrt(ap) * d + Math.sqrt(1 - ap) * 0.5)) < 1e-5);
  assert.equal(noise.draws, 1);
  const last = s.stepOutput(eps, 499, first.prevSample, { generator: noise });
  assert.equal(last.prevSample, last.extras.denoised);
  assert.equal(noise.draws, 1);
});

test('TCD with gamma 0 is deterministic: x_s at s = prev timestep, nothing drawn', () => {
  const s = new TCDScheduler(sdxl());
  s.setTimesteps(4);
  const noise = new CountingNoise(1);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const out = s.stepOutput(eps, 999, x, { eta: 0, generator: noise });
  assert.equal(noise.draws, 0);
  assert.equal(out.prevSample, out.extras.pred_noised_sample);
  const a = s.alphasCumprod[999]!;
  const as = s.alphasCumprod[759]!;
  const expected = x.map((v, i) => Math.sqrt(as) * ((v - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a)) + Math.sqrt(1 - as) * eps[i]!);
  assert.ok(maxAbsDiff(out.prevSample, expected) < 1e-5);
});

test('TCD with gamma 0.3 (diffusers\' step default) moves to s = floor(0.7 · t_prev) and forward-diffuses back to t_prev', () => {
  const s = new TCDScheduler(sdxl());
  s.setTimesteps(4);
  const noise = new CountingNoise(0.5);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const out = s.stepOutput(eps, 999, x, { generator: noise });
  assert.equal(noise.draws, 1);
  const a = s.alphasCumprod[999]!;
  const ap = s.alphasCumprod[759]!;
  const as = s.alphasCumprod[531]!; // floor(0.7 · 759)
  const xs = x.map((v, i) => Math.sqrt(as) * ((v - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a)) + Math.sqrt(1 - as) * eps[i]!);
  assert.ok(maxAbsDiff(out.extras.pred_noised_sample!, xs) < 1e-5);
  assert.ok(maxAbsDiff(out.prevSample, xs.map((v) => Math.sqrt(ap / as) * v + Math.sqrt(1 - ap / as) * 0.5)) < 1e-5);
});

test('TCD refuses a gamma outside [0, 1]', () => {
  const s = new TCDScheduler(sdxl());
  s.setTimesteps(4);
  assert.throws(() => s.step(latent(), 999, latent(), { eta: 1.5 }), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_option');
});
