/**
 * Choosing a scheduler by diffusers class name, from a diffusers scheduler config (plain data, e.g. a
 * checkpoint's scheduler/scheduler_config.json).
 *
 *   createScheduler(config)                         // the class named by config._class_name
 *   createScheduler(config, 'DPMSolverMultistepScheduler')   // = DPMSolverMultistepScheduler.from_config(config)
 *
 * The second form is how the service switches scheduler on an SDXL checkpoint: the new class takes the keys
 * it declares from the config (not those the config lists in `_use_default_values`), its own defaults
 * for the rest, and carries the remaining keys along unused, exactly like diffusers' `from_config`.
 */
import { EngineError } from '../errors.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver-multistep.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral.js';
import { EulerDiscreteScheduler } from './euler.js';
import { FlowMatchEulerDiscreteScheduler } from './flow-match-euler.js';
import { LCMScheduler } from './lcm.js';
import { LMSDiscreteScheduler } from './lms.js';
import { PNDMScheduler } from './pndm.js';
import { TCDScheduler } from './tcd.js';
import type { Scheduler, SchedulerName } from './types.js';

export type { NoiseSource, Scheduler, SchedulerName, StepOptions, StepOutput } from './types.js';
export {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  FlowMatchEulerDiscreteScheduler,
  LCMScheduler,
  LMSDiscreteScheduler,
  PNDMScheduler,
  TCDScheduler,
};

const CONSTRUCTORS: Record<SchedulerName, new (config: Record<string, unknown>) => Scheduler> = {
  FlowMatchEulerDiscreteScheduler,
  EulerDiscreteScheduler,
  DDIMScheduler,
  LMSDiscreteScheduler,
  DPMSolverMultistepScheduler,
  PNDMScheduler,
  DDPMScheduler,
  EulerAncestralDiscreteScheduler,
  LCMScheduler,
  TCDScheduler,
};

/** Every scheduler the engine implements, in the order the tool lists its own (the tool offers the seed's eight; LCM and TCD, for LCM-/TCD-LoRAs, follow). */
export const SCHEDULER_NAMES: readonly SchedulerName[] = Object.freeze(Object.keys(CONSTRUCTORS) as SchedulerName[]);

export function isSchedulerName(name: unknown): name is SchedulerName {
  return typeof name === 'string' && Object.hasOwn(CONSTRUCTORS, name);
}

/**
 * A scheduler from a diffusers config. `name` picks the class (as `Name.from_config(config)`); without it
 * the config's `_class_name` does. Unknown names fail with EngineError('unknown_scheduler') listing the
 * valid ones; bad values fail with EngineError('bad_scheduler_config').
 */
export function createScheduler(config: Record<string, unknown> = {}, name?: string): Scheduler {
  const chosen = name ?? config._class_name;
  if (chosen === undefined) {
    throw new EngineError('unknown_scheduler', `no scheduler named: give a name or a config with "_class_name" (one of ${SCHEDULER_NAMES.join(', ')})`);
  }
  if (!isSchedulerName(chosen)) {
    throw new EngineError('unknown_scheduler', `unknown scheduler ${JSON.stringify(chosen)}: use one of ${SCHEDULER_NAMES.join(', ')}`);
  }
  return new CONSTRUCTORS[chosen](config);
}
