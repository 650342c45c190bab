// DDPMScheduler: ancestral sampling with SDXL's config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { DDPMScheduler } from '../../../src/engine/schedulers/ddpm.js';
import { CountingNoise, latent, maxAbsDiff, sdxl } from './fixtures.js';

test('DDPM with SDXL\'s config visits 951…1 for 20 steps, like DDIM', () => {
  const s = new DDPMScheduler(sdxl());
  s.setTimesteps(20);
  assert.equal(s.timesteps.length, 20);
  assert.equal(s.timesteps[0], 951);
  assert.equal(s.timesteps[19], 1);
});

test('DDPM draws noise at every t > 0 and none at t = 0', () => {
  const s = new DDPMScheduler(sdxl({ steps_offset: 0 }));
  s.setTimesteps(4);
  assert.deepEqual(s.timesteps, [750, 500, 250, 0]);
  const noise = new CountingNoise(0);
  let x = latent();
  for (const t of s.timesteps) x = s.step(latent(16, 0.1), t, x, { generator: noise });
  assert.equal(noise.draws, 3);
});

test('DDPM without a generator cannot add its noise: missing_generator', () => {
  const s = new DDPMScheduler(sdxl());
  s.setTimesteps(4);
  assert.throws(() => s.step(latent(), s.timesteps[0]!, latent()), (err: unknown) => err instanceof EngineError && err.code === 'missing_generator');
});

test('with zero noise a DDPM step is the posterior mean (eq. 7)', () => {
  const s = new DDPMScheduler(sdxl());
  s.setTimesteps(20);
  const x = latent(16, 2);
  const eps = latent(16, 0.3);
  const a = s.alphasCumprod[951]!;
  const ap = s.alphasCumprod[901]!;
  const alpha = a / ap;
  const mean = x.map((v, i) => {
    const x0 = (v - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a);
    return ((Math.sqrt(ap) * (1 - alpha)) / (1 - a)) * x0 + ((Math.sqrt(alpha) * (1 - ap)) / (1 - a)) * v;
  });
  assert.ok(maxAbsDiff(s.step(eps, 951, x, { generator: new CountingNoise(0) }), mean) < 1e-5);
});

test('fixed_small adds sqrt(β̃_t)·z, fixed_large sqrt(β_t)·z', () => {
  const run = (varianceType: string): number => {
    const s = new DDPMScheduler(sdxl({ variance_type: varianceType }));
    s.setTimesteps(20);
    const zero = s.step(Float32Array.of(0), 951, Float32Array.of(0), { generator: new CountingNoise(0) });
    return s.step(Float32Array.of(0), 951, Float32Array.of(0), { generator: new CountingNoise(1) })[0]! - zero[0]!;
  };
  const s = new DDPMScheduler(sdxl());
  const a = s.alphasCumprod[951]!;
  const ap = s.alphasCumprod[901]!;
  const beta = 1 - a / ap;
  assert.ok(Math.abs(run('fixed_small') - Math.sqrt(((1 - ap) / (1 - a)) * beta)) < 1e-6);
  assert.ok(Math.abs(run('fixed_large') - Math.sqrt(beta)) < 1e-6);
});

test('variance_type fixed_large_log (NaN in diffusers 0.30) is refused', () => {
  assert.throws(() => new DDPMScheduler(sdxl({ variance_type: 'fixed_large_log' })), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config');
});

test('learned variance types need the model\'s variance channels', () => {
  const s = new DDPMScheduler(sdxl({ variance_type: 'learned_range' }));
  s.setTimesteps(10);
  assert.throws(() => s.step(latent(), s.timesteps[0]!, latent(), { generator: new CountingNoise() }), (err: unknown) => err instanceof EngineError && err.code === 'bad_shape');
  const out = s.step(new Float32Array(32), s.timesteps[0]!, latent(), { generator: new CountingNoise(), shape: [1, 4, 2, 2] });
  assert.equal(out.length, 16);
});
