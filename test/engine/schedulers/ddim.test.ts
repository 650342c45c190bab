// DDIMScheduler: deterministic DDIM with diffusers' defaults and SDXL's config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { DDIMScheduler } from '../../../src/engine/schedulers/ddim.js';
import { CountingNoise, latent, maxAbsDiff, sdxl } from './fixtures.js';

test('DDIM with leading spacing and steps_offset 1 gives timesteps 951…1 for 20 steps', () => {
  const s = new DDIMScheduler(sdxl());
  s.setTimesteps(20);
  assert.deepEqual(s.timesteps, Array.from({ length: 20 }, (_, i) => 951 - 50 * i));
});

test('DDIM defaults are diffusers\': linear betas 1e-4..0.02, clip_sample, set_alpha_to_one, leading spacing without offset', () => {
  const s = new DDIMScheduler();
  assert.equal(s.config.beta_schedule, 'linear');
  assert.equal(s.config.clip_sample, true);
  assert.equal(s.config.set_alpha_to_one, true);
  s.setTimesteps(10);
  assert.deepEqual(s.timesteps, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.equal(s.initNoiseSigma, 1);
});

test('the model input is not scaled', () => {
  const s = new DDIMScheduler(sdxl());
  const x = latent();
  assert.equal(s.scaleModelInput(x, 951), x);
});

test('stepping before setTimesteps is a scheduler_not_ready error', () => {
  const s = new DDIMScheduler(sdxl());
  assert.throws(() => s.step(latent(), 951, latent()), (err: unknown) => err instanceof EngineError && err.code === 'scheduler_not_ready');
});

test('an x0-predicting model lands exactly on its prediction at the last step when set_alpha_to_one', () => {
  const s = new DDIMScheduler(sdxl({ prediction_type: 'sample', set_alpha_to_one: true }));
  s.setTimesteps(10);
  const x0 = latent(16, 0.5);
  const out = s.step(x0, s.timesteps[9]!, latent(16, 3));
  assert.ok(maxAbsDiff(out, x0) < 1e-6);
});

test('a step from t follows eq. 12: sqrt(ᾱ_prev)·x0 + sqrt(1 - ᾱ_prev)·ε', () => {
  const s = new DDIMScheduler(sdxl());
  s.setTimesteps(20);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const a = s.alphasCumprod[951]!;
  const ap = s.alphasCumprod[901]!;
  const expected = x.map((v, i) => Math.sqrt(ap) * ((v - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a)) + Math.sqrt(1 - ap) * eps[i]!);
  assert.ok(maxAbsDiff(s.step(eps, 951, x), expected) < 1e-5);
});

test('clip_sample clamps the predicted x0 to ±clip_sample_range', () => {
  const s = new DDIMScheduler(sdxl({ prediction_type: 'sample', clip_sample: true, clip_sample_range: 0.5, set_alpha_to_one: true }));
  s.setTimesteps(10);
  const out = s.step(Float32Array.of(3, -3, 0.25), s.timesteps[9]!, Float32Array.of(0, 0, 0));
  assert.deepEqual([...out], [0.5, -0.5, 0.25]);
});

test('eta 0 draws no noise; eta > 0 draws one tensor per step and needs a generator', () => {
  const s = new DDIMScheduler(sdxl());
  s.setTimesteps(5);
  const noise = new CountingNoise();
  s.step(latent(), s.timesteps[0]!, latent(), { generator: noise });
  assert.equal(noise.draws, 0);
  const noisy = s.step(latent(), s.timesteps[1]!, latent(), { generator: noise, eta: 1 });
  assert.equal(noise.draws, 1);
  assert.notDeepEqual(noisy, s.step(latent(), s.timesteps[1]!, latent()));
  assert.throws(() => s.step(latent(), s.timesteps[1]!, latent(), { eta: 1 }), (err: unknown) => err instanceof EngineError && err.code === 'missing_generator');
});

test('addNoise mixes sqrt(ᾱ_t)·x and sqrt(1 - ᾱ_t)·noise', () => {
  const s = new DDIMScheduler(sdxl());
  const out = s.addNoise(Float32Array.of(1), Float32Array.of(1), 500);
  const a = s.alphasCumprod[500]!;
  assert.ok(Math.abs(out[0]! - (Math.sqrt(a) + Math.sqrt(1 - a))) < 1e-6);
});
