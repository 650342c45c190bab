// PhiloxGenerator reproduces AUTOMATIC1111's rng_philox.py (its emulation of CUDA torch.randn).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhiloxGenerator, philox4x32 } from '../../../src/engine/rng/philox.js';

test('Philox4x32-10 matches the Random123 known answer for counter 0, key 0', () => {
  const out = new Uint32Array(2);
  philox4x32(0, 0, 0, 0, out);
  assert.deepEqual(Array.from(out), [0x6627e8d5, 0xe169c58d]);
});

test('seed 0, randn(3, 4) equals the numpy reference to every printed digit', () => {
  // A1111's numpy output (numpy 1.24), printed to 8 decimals: enough to pin each float32.
  const expected = [
    -0.92466241, -0.42534396, -2.6438458, 0.14518388, -0.12086651, -0.57972568,
    -0.62285131, -0.32838714, -1.07454205, -0.3631441, -1.67105043, 2.26550508,
  ];
  assert.deepEqual(Array.from(new PhiloxGenerator(0).randn([3, 4])), expected.map(Math.fround));
});

test('each element is independent of the shape: element i is counter i', () => {
  const flat = new PhiloxGenerator(11).randn([12]);
  assert.deepEqual(new PhiloxGenerator(11).randn([3, 4]), flat);
  assert.deepEqual(new PhiloxGenerator(11).randn([5]), flat.subarray(0, 5));
});

test('the offset grows by one per randn call, so consecutive calls differ', () => {
  const g = new PhiloxGenerator(0);
  const first = g.randn([8]);
  const second = g.randn([8]);
  assert.equal(g.callOffset(), 2);
  assert.notDeepEqual(second, first);
});

test('manualSeed restarts the offset', () => {
  const g = new PhiloxGenerator(0);
  const first = g.randn([8]);
  g.randn([8]);
  g.manualSeed(0);
  assert.deepEqual(g.randn([8]), first);
});

test('all 64 seed bits form the key: unlike torch CPU, 5 and 2^32+5 differ', () => {
  assert.notDeepEqual(new PhiloxGenerator(5).randn([4]), new PhiloxGenerator(2n ** 32n + 5n).randn([4]));
});

test('seeds are accepted as numbers, bigints and decimal strings alike', () => {
  assert.deepEqual(new PhiloxGenerator('3572004920').randn([6]), new PhiloxGenerator(3572004920).randn([6]));
});
