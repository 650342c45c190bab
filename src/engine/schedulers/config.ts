/**
 * Scheduler configs as plain data, resolved like diffusers' `ConfigMixin.from_config`: each scheduler
 * declares its constructor arguments (type, default, allowed values) as a spec, and a raw config dict
 * (a checkpoint's scheduler_config.json, or another scheduler's config) is resolved against it.
 */
import { EngineError } from '../errors.js';

/** One constructor argument of a diffusers scheduler: its type, its default, and allowed strings. */
export type ParamSpec =
  | { type: 'int'; default: number; min?: number }
  | { type: 'number'; default: number }
  | { type: 'number?'; default: number | null }
  | { type: 'boolean'; default: boolean }
  | { type: 'string'; default: string; choices?: readonly string[] }
  | { type: 'string?'; default: string | null; choices?: readonly string[] }
  | { type: 'numbers?'; default: readonly number[] | null };

export type ConfigSpec = Record<string, ParamSpec>;

type ValueOf<P extends ParamSpec> = P['type'] extends 'int' | 'number'
  ? number
  : P['type'] extends 'number?'
    ? number | null
    : P['type'] extends 'boolean'
      ? boolean
      : P['type'] extends 'string'
        ? string
        : P['type'] extends 'string?'
          ? string | null
          : readonly number[] | null;

/** The resolved constructor arguments of a scheduler, typed from its spec. */
export type ConfigOf<S extends ConfigSpec> = { readonly [K in keyof S]: ValueOf<S[K]> };

export interface ResolvedConfig<S extends ConfigSpec> {
  values: ConfigOf<S>;
  /** The whole config as diffusers would hold it after `from_config` (declared keys, `_use_default_values`, carried keys). */
  record: Record<string, unknown>;
}

function describe(value: unknown): string {
  return value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value);
}

function checkParam(className: string, key: string, spec: ParamSpec, value: unknown): void {
  const bad = (want: string): never => {
    throw new EngineError('bad_scheduler_config', `${className}: config "${key}" must be ${want}, got ${describe(value)}`);
  };
  switch (spec.type) {
    case 'int':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (spec.min ?? 0)) bad(`an integer >= ${spec.min ?? 0}`);
      return;
    case 'number':
      if (typeof value !== 'number' || Number.isNaN(value)) bad('a number');
      return;
    case 'number?':
      if (value !== null && (typeof value !== 'number' || Number.isNaN(value))) bad('a number or null');
      return;
    case 'boolean':
      if (typeof value !== 'boolean') bad('true or false');
      return;
    case 'string':
    case 'string?':
      if (value === null && spec.type === 'string?') return;
      if (typeof value !== 'string') bad(spec.type === 'string' ? 'a string' : 'a string or null');
      if (spec.choices && !spec.choices.includes(value as string)) {
        bad(`one of ${[...(spec.type === 'string?' ? ['null'] : []), ...spec.choices.map((c) => JSON.stringify(c))].join(', ')}`);
      }
      return;
    case 'numbers?':
      if (value !== null && (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isFinite(v)))) {
        bad('a list of numbers or null');
      }
      return;
  }
}

/**
 * `Scheduler.from_config(config)` as diffusers does it: keys the class declares are taken from the config,
 * except those the config lists in `_use_default_values` (they were defaults of the class that wrote it, so
 * this class uses its own defaults); missing keys take this class's defaults; private `_` keys are dropped;
 * other keys are carried along unused (so a later `from_config` of another class still sees them).
 */
export function resolveConfig<S extends ConfigSpec>(className: string, spec: S, raw: Record<string, unknown>): ResolvedConfig<S> {
  const usedDefaultsOfSource = Array.isArray(raw._use_default_values) ? new Set(raw._use_default_values as unknown[]) : new Set<unknown>();
  const values: Record<string, unknown> = {};
  const usedDefaults: string[] = [];
  for (const [key, param] of Object.entries(spec)) {
    if (key in raw && raw[key] !== undefined && !usedDefaultsOfSource.has(key)) {
      checkParam(className, key, param, raw[key]);
      values[key] = raw[key];
    } else {
      values[key] = param.default;
      usedDefaults.push(key);
    }
  }
  const carried: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!key.startsWith('_') && !(key in spec)) carried[key] = value;
  }
  const record = { _class_name: className, ...values, ...(usedDefaults.length ? { _use_default_values: usedDefaults } : {}), ...carried };
  return { values: values as ConfigOf<S>, record };
}

/** The keys every beta-schedule scheduler shares, with diffusers' defaults. */
export const BETA_PARAMS = {
  num_train_timesteps: { type: 'int', default: 1000, min: 1 },
  beta_start: { type: 'number', default: 0.0001 },
  beta_end: { type: 'number', default: 0.02 },
  beta_schedule: { type: 'string', default: 'linear' },
  trained_betas: { type: 'numbers?', default: null },
} satisfies ConfigSpec;

export const TIMESTEP_SPACINGS = ['linspace', 'leading', 'trailing'] as const;
export const PREDICTION_TYPES = ['epsilon', 'sample', 'v_prediction'] as const;
