// Scheduler configs as plain data: diffusers' from_config rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { resolveConfig } from '../../../src/engine/schedulers/config.js';

test('config resolution: declared keys taken, defaults for the rest, other keys carried, private keys dropped', () => {
  const spec = {
    a: { type: 'int', default: 1 },
    b: { type: 'string', default: 'x', choices: ['x', 'y'] },
    c: { type: 'number?', default: null },
  } as const;
  const { values, record } = resolveConfig('Test', spec, { _class_name: 'Other', _diffusers_version: '0.19', a: 5, extra: true });
  assert.deepEqual(values, { a: 5, b: 'x', c: null });
  assert.deepEqual(record, { _class_name: 'Test', a: 5, b: 'x', c: null, _use_default_values: ['b', 'c'], extra: true });
});

test('config resolution: keys the source listed in _use_default_values take this class\'s defaults', () => {
  const spec = { timestep_spacing: { type: 'string', default: 'linspace' } } as const;
  const { values } = resolveConfig('Test', spec, { timestep_spacing: 'leading', _use_default_values: ['timestep_spacing'] });
  assert.equal(values.timestep_spacing, 'linspace');
});

test('config resolution: a value of the wrong type or outside the choices is a bad_scheduler_config error', () => {
  const spec = { n: { type: 'int', default: 1, min: 1 }, p: { type: 'string', default: 'epsilon', choices: ['epsilon', 'sample'] } } as const;
  const bad = (raw: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(() => resolveConfig('Test', spec, raw), (err: unknown) => err instanceof EngineError && err.code === 'bad_scheduler_config' && pattern.test(err.message));
  };
  bad({ n: 0 }, /"n" must be an integer >= 1, got 0/);
  bad({ n: '5' }, /"n" must be an integer/);
  bad({ p: 'eps' }, /"p" must be one of "epsilon", "sample", got "eps"/);
});
