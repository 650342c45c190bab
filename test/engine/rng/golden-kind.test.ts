// The rng golden evaluator replays any entry list in the case format, not just the shipped case:
// unseen seeds, shapes and chains, in any listing order; what it cannot replay fails with a note.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GoldenCase } from '../../../src/engine/golden/case.js';
import { evaluate } from '../../../src/engine/golden/kinds/rng.js';
import type { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { PhiloxGenerator } from '../../../src/engine/rng/philox.js';
import { TorchGenerator } from '../../../src/engine/rng/torch-cpu.js';

type Entry = Record<string, unknown>;

/** A case whose io holds the given tensors; only the reader methods the evaluator uses are stubbed. */
function fakeCase(entries: Entry[], tensors: Record<string, { shape: number[]; data: Float32Array }>): GoldenCase {
  const io = {
    has: (name: string) => name in tensors,
    info: (name: string) => ({ name, dtype: 'F32', shape: tensors[name]!.shape, begin: 0, end: 0 }),
    readFloat32: (name: string) => tensors[name]!.data,
  } as unknown as SafetensorsFile;
  return {
    dir: '/nonexistent', name: 'fake', kind: 'rng', json: {}, config: { entries },
    tolerance: { atol: 1e-6, rtol: 1e-6 }, io: () => io, file: (p: string) => p, close: () => {},
  };
}

function byName(checks: ReturnType<typeof evaluate>) {
  return new Map(checks.map((c) => [c.name, c]));
}

test('unseen seeds, shapes and fns replay from fresh generators', () => {
  const entries = [
    { name: 'a', fn: 'randn', seed: 123, shape: [2, 3, 5], draw_index: 0 },
    { name: 'b', fn: 'rand', seed: 99, shape: [7], draw_index: 0 },
    { name: 'c', fn: 'a1111_rng_philox.Generator(seed).randn(shape)', seed: 77, shape: [3, 3], draw_index: 0 },
  ];
  const checks = evaluate(fakeCase(entries, {
    a: { shape: [2, 3, 5], data: new TorchGenerator(123).randn([30]) },
    b: { shape: [7], data: new TorchGenerator(99).rand([7]) },
    c: { shape: [3, 3], data: new PhiloxGenerator(77).randn([9]) },
  }));
  assert.equal(checks.length, 3);
  for (const c of checks) assert.ok(c.pass && c.maxAbsError === 0, `${c.name}: ${c.note ?? c.maxAbsError}`);
});

test('a chain shares one generator and replays in draw_index order, whatever the listing order', () => {
  const g = new TorchGenerator(5);
  const d0 = g.rand([3]);
  const d1 = g.randn([9]);
  const d2 = g.randn([21]);
  const entries = [
    { name: 'd2', fn: 'randn', seed: 5, shape: [21], draw_index: 2, chain: 4 },
    { name: 'd0', fn: 'rand', seed: 5, shape: [3], draw_index: 0, chain: 4 },
    { name: 'd1', fn: 'randn', seed: 5, shape: [9], draw_index: 1, chain: 4 },
  ];
  const checks = evaluate(fakeCase(entries, {
    d0: { shape: [3], data: d0 }, d1: { shape: [9], data: d1 }, d2: { shape: [21], data: d2 },
  }));
  assert.ok(checks.every((c) => c.pass), JSON.stringify(checks));
});

test('a philox chain advances the offset between draws', () => {
  const g = new PhiloxGenerator(3);
  const p0 = g.randn([4]);
  const p1 = g.randn([4]);
  const fn = 'a1111_rng_philox.Generator(seed).randn(shape)';
  const checks = evaluate(fakeCase(
    [
      { name: 'p0', fn, seed: 3, shape: [4], draw_index: 0, chain: 'x' },
      { name: 'p1', fn, seed: 3, shape: [4], draw_index: 1, chain: 'x' },
    ],
    { p0: { shape: [4], data: p0 }, p1: { shape: [4], data: p1 } },
  ));
  assert.ok(checks.every((c) => c.pass));
});

test('a seed beyond 2^53 is taken exactly from the digits in the entry name', () => {
  const name = 'philox_seed18446744073709551615_shape3';
  const entries = [{ name, fn: 'a1111_rng_philox.Generator(seed).randn(shape)', seed: 18446744073709551615, shape: [3] }];
  const checks = evaluate(fakeCase(entries, { [name]: { shape: [3], data: new PhiloxGenerator('18446744073709551615').randn([3]) } }));
  assert.equal(checks[0]!.maxAbsError, 0);
});

test('wrong numbers fail', () => {
  const data = new TorchGenerator(1).randn([16]);
  data[3]! += 1e-3;
  const checks = evaluate(fakeCase([{ name: 'a', fn: 'randn', seed: 1, shape: [16] }], { a: { shape: [16], data } }));
  assert.equal(checks[0]!.pass, false);
});

test('a chain with a missing draw fails with a note instead of guessing', () => {
  const entries = [{ name: 'late', fn: 'randn', seed: 1, shape: [2], draw_index: 1, chain: 0 }];
  const [check] = evaluate(fakeCase(entries, { late: { shape: [2], data: new Float32Array(2) } }));
  assert.equal(check!.pass, false);
  assert.match(check!.note ?? '', /draw 0/);
});

test('an unknown fn, a missing tensor and a shape mismatch each fail with a note', () => {
  const checks = byName(evaluate(fakeCase(
    [
      { name: 'u', fn: 'torch.normal', seed: 1, shape: [2] },
      { name: 'missing', fn: 'randn', seed: 1, shape: [2] },
      { name: 's', fn: 'randn', seed: 1, shape: [2, 2] },
    ],
    { u: { shape: [2], data: new Float32Array(2) }, s: { shape: [4], data: new TorchGenerator(1).randn([4]) } },
  )));
  for (const name of ['u', 'missing', 's']) {
    assert.equal(checks.get(name)!.pass, false, name);
    assert.ok(checks.get(name)!.note, name);
  }
});

test('a case with no entries fails', () => {
  const checks = evaluate(fakeCase(undefined as unknown as Entry[], {}));
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.pass, false);
});
