// A single-file checkpoint carries no scheduler config: it runs with SDXL base's, whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SDXL_BASE_SCHEDULER } from '../../../src/engine/pipelines/sdxl-components.js';
import { createScheduler } from '../../../src/engine/schedulers/index.js';

test('switching a single-file checkpoint to DDIM keeps SDXL\'s set_alpha_to_one false, not diffusers\' default true', () => {
  const sdxl = createScheduler(SDXL_BASE_SCHEDULER, 'DDIMScheduler');
  const defaults = createScheduler({ ...SDXL_BASE_SCHEDULER, set_alpha_to_one: true }, 'DDIMScheduler');
  for (const s of [sdxl, defaults]) s.setTimesteps(20);
  const x = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
  const eps = Float32Array.from({ length: 16 }, (_, i) => 0.3 * Math.cos(i));
  const last = sdxl.timesteps.at(-1)!;
  const a = sdxl.step(eps, last, x);
  const b = defaults.step(eps, last, x);
  assert.notDeepEqual(a, b, 'the final DDIM step depends on set_alpha_to_one');
  assert.equal(SDXL_BASE_SCHEDULER.set_alpha_to_one, false);
  assert.equal(SDXL_BASE_SCHEDULER.skip_prk_steps, true);
  assert.equal(SDXL_BASE_SCHEDULER.clip_sample, false);
});
