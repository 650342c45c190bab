// FlowMatchEulerDiscreteScheduler: Euler on a rectified-flow velocity, with shift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/engine/schedulers/flow-match-euler.js';
import { latent, maxAbsDiff } from './fixtures.js';

test('shift 1: 7 steps visit 1000, 833.5, 667, 500.5, 334, 167.5, 1 with σ = t/1000 and a final σ of 0', () => {
  const s = new FlowMatchEulerDiscreteScheduler();
  s.setTimesteps(7);
  assert.deepEqual(s.timesteps.map((t) => Math.round(t * 100) / 100), [1000, 833.5, 667, 500.5, 334, 167.5, 1]);
  assert.equal(s.sigmas[7], 0);
  assert.ok(Math.abs(s.sigmas[3]! - 0.5005) < 1e-7);
  assert.equal(s.initNoiseSigma, 1);
});

test('shift 3 is applied to the training table and again to the schedule (final σ 0.0089286)', () => {
  const s = new FlowMatchEulerDiscreteScheduler({ shift: 3.0 });
  s.setTimesteps(7);
  assert.equal(s.sigmas[0], 1);
  assert.ok(Math.abs(s.sigmas[6]! - 0.008928571827709675) < 1e-9);
});

test('a constant velocity v carries x to x - v over the whole schedule', () => {
  const s = new FlowMatchEulerDiscreteScheduler({ shift: 3.0 });
  s.setTimesteps(9);
  const v = latent(16, 0.4);
  let x = latent(16, 2);
  const start = x;
  for (const t of s.timesteps) x = s.step(v, t, x);
  assert.ok(maxAbsDiff(x, start.map((u, i) => u - v[i]!)) < 1e-5);
});

test('the model input is not scaled', () => {
  const s = new FlowMatchEulerDiscreteScheduler();
  s.setTimesteps(4);
  const x = latent();
  assert.equal(s.scaleModelInput(x), x);
});

test('dynamic shifting needs mu: exp(μ) / (exp(μ) + 1/σ - 1)', () => {
  const s = new FlowMatchEulerDiscreteScheduler({ use_dynamic_shifting: true });
  assert.throws(() => s.setTimesteps(4), (err: unknown) => err instanceof EngineError && /mu/.test(err.message));
  s.setTimesteps(4, { mu: 0 });
  assert.ok(Math.abs(s.sigmas[1]! - (1000 - 333) / 1000) < 1e-6, 'μ = 0 leaves σ unshifted');
});

test('addNoise puts the sample σ of the way to the noise', () => {
  const s = new FlowMatchEulerDiscreteScheduler();
  s.setTimesteps(3);
  const t = s.timesteps[1]!;
  const sigma = s.sigmas[1]!;
  const out = s.addNoise(Float32Array.of(2), Float32Array.of(-1), t);
  assert.ok(Math.abs(out[0]! - (sigma * -1 + (1 - sigma) * 2)) < 1e-6);
});
