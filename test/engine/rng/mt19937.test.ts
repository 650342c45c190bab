// The Mersenne Twister behind torch's CPU generator is std::mt19937.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mt19937 } from '../../../src/engine/rng/mt19937.js';

test('seed 0 draws 2357136044, 2546248239, 3071714933', () => {
  const mt = new Mt19937(0);
  assert.deepEqual([mt.nextUint32(), mt.nextUint32(), mt.nextUint32()], [2357136044, 2546248239, 3071714933]);
});

test('the default seed 5489 gives 4123659995 as its 10000th draw (the C++ standard check)', () => {
  const mt = new Mt19937();
  for (let i = 0; i < 9999; i++) mt.nextUint32();
  assert.equal(mt.nextUint32(), 4123659995);
});

test('bulk fill continues the same stream as single draws, across twists', () => {
  const single = new Mt19937(7);
  const bulk = new Mt19937(7);
  const words = new Uint32Array(1500);
  bulk.fill(words.subarray(0, 700));
  bulk.fill(words.subarray(700));
  for (let i = 0; i < words.length; i++) assert.equal(words[i], single.nextUint32());
});

test('reseeding restarts the stream', () => {
  const mt = new Mt19937(0);
  for (let i = 0; i < 1000; i++) mt.nextUint32();
  mt.seed(0);
  assert.equal(mt.nextUint32(), 2357136044);
});
