// Choosing a scheduler: names, defaults, and switching class on a checkpoint's config (from_config).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { SCHEDULER_NAMES, createScheduler, isSchedulerName } from '../../../src/engine/schedulers/index.js';
import { CountingNoise, SDXL_SCHEDULER_CONFIG, denoise, latent } from './fixtures.js';

test('the engine implements the seed tool\'s eight schedulers plus LCM and TCD', () => {
  assert.deepEqual(
    [...SCHEDULER_NAMES].sort(),
    [
      'DDIMScheduler', 'DDPMScheduler', 'DPMSolverMultistepScheduler', 'EulerAncestralDiscreteScheduler',
      'EulerDiscreteScheduler', 'FlowMatchEulerDiscreteScheduler', 'LCMScheduler', 'LMSDiscreteScheduler', 'PNDMScheduler',
      'TCDScheduler',
    ],
  );
  assert.ok(isSchedulerName('DDIMScheduler'));
  assert.ok(!isSchedulerName('UniPCMultistepScheduler'));
});

test('every offered scheduler builds from SDXL\'s config and denoises a latent to finite values', () => {
  for (const name of SCHEDULER_NAMES) {
    const s = createScheduler(SDXL_SCHEDULER_CONFIG, name);
    assert.equal(s.name, name);
    assert.equal(s.config._class_name, name);
    const out = denoise(s, 6, latent(16), (x, t) => x.map((v) => 0.3 * Math.tanh(v) + 0.05 * Math.cos(t / 100)), new CountingNoise(0.1));
    assert.ok(out.every(Number.isFinite), name);
  }
});

test('the config\'s _class_name picks the class', () => {
  assert.equal(createScheduler(SDXL_SCHEDULER_CONFIG).name, 'EulerDiscreteScheduler');
  assert.equal(createScheduler({ _class_name: 'DDIMScheduler' }).name, 'DDIMScheduler');
});

test('an unknown scheduler is an unknown_scheduler error listing the valid names', () => {
  for (const call of [() => createScheduler({}, 'UniPCMultistepScheduler'), () => createScheduler({ _class_name: 'KarrasVeScheduler' }), () => createScheduler({})]) {
    assert.throws(call, (err: unknown) => err instanceof EngineError && err.code === 'unknown_scheduler' && SCHEDULER_NAMES.every((n) => err.message.includes(n)));
  }
});

test('X.from_config(sdxl): DPM-Solver takes the shared keys, its own defaults, and carries the rest', () => {
  const s = createScheduler(SDXL_SCHEDULER_CONFIG, 'DPMSolverMultistepScheduler');
  assert.equal(s.config.beta_schedule, 'scaled_linear');
  assert.equal(s.config.timestep_spacing, 'leading');
  assert.equal(s.config.steps_offset, 1);
  assert.equal(s.config.solver_order, 2);
  assert.equal(s.config.algorithm_type, 'dpmsolver++');
  assert.equal(s.config.skip_prk_steps, true, 'unused keys are carried along');
  assert.ok(!('_diffusers_version' in s.config));
  assert.deepEqual(s.config._use_default_values, [
    'solver_order', 'thresholding', 'dynamic_thresholding_ratio', 'algorithm_type', 'solver_type', 'lower_order_final',
    'euler_at_final', 'use_lu_lambdas', 'final_sigmas_type', 'lambda_min_clipped', 'variance_type', 'rescale_betas_zero_snr',
  ]);
});

test('switching back and forth keeps the checkpoint\'s values but not another class\'s defaults', () => {
  const ddim = createScheduler({ _class_name: 'DDIMScheduler', beta_schedule: 'scaled_linear' });
  assert.equal(ddim.config.timestep_spacing, 'leading', 'DDIM\'s own default');
  const euler = createScheduler(ddim.config, 'EulerDiscreteScheduler');
  assert.equal(euler.config.timestep_spacing, 'linspace', 'DDIM\'s default is not Euler\'s');
  assert.equal(euler.config.beta_schedule, 'scaled_linear');
});

test('missing keys take diffusers\' defaults for the chosen class', () => {
  assert.equal(createScheduler({}, 'PNDMScheduler').config.skip_prk_steps, false);
  assert.equal(createScheduler({}, 'EulerDiscreteScheduler').config.timestep_spacing, 'linspace');
  assert.equal(createScheduler({}, 'FlowMatchEulerDiscreteScheduler').config.shift, 1);
});

test('a bad value in the config is a bad_scheduler_config error naming the key', () => {
  assert.throws(
    () => createScheduler({ ...SDXL_SCHEDULER_CONFIG, prediction_type: 'noise' }),
    (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config' && /prediction_type/.test(err.message),
  );
});
