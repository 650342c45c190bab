// parseSeed: the one gate every user-supplied seed passes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { MAX_SEED, parseSeed } from '../../../src/engine/rng/seed.js';

function assertBadSeed(input: string | number | bigint): void {
  assert.throws(
    () => parseSeed(input),
    (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.code, 'bad_seed');
      // The message says what is allowed, so a user can fix the request.
      assert.match(err.message, /0 to 18446744073709551615/);
      return true;
    },
  );
}

test('decimal strings are accepted as the service receives them', () => {
  assert.equal(parseSeed('3572004920'), 3572004920n);
  assert.equal(parseSeed('0'), 0n);
});

test('the whole unsigned 64-bit range is accepted, its top as a string or bigint', () => {
  assert.equal(MAX_SEED, 18446744073709551615n);
  assert.equal(parseSeed('18446744073709551615'), MAX_SEED);
  assert.equal(parseSeed(MAX_SEED), MAX_SEED);
});

test('safe integer numbers and bigints are accepted', () => {
  assert.equal(parseSeed(42), 42n);
  assert.equal(parseSeed(Number.MAX_SAFE_INTEGER), 9007199254740991n);
  assert.equal(parseSeed(4294967303n), 4294967303n);
});

test('surrounding whitespace in a string is ignored', () => {
  assert.equal(parseSeed(' 42\n'), 42n);
});

test('seeds past 2^64-1 are rejected', () => {
  assertBadSeed('18446744073709551616');
  assertBadSeed(1n << 64n);
});

test('negative seeds are rejected', () => {
  assertBadSeed('-1');
  assertBadSeed(-1);
  assertBadSeed(-1n);
});

test('strings that are not plain decimal digits are rejected', () => {
  for (const s of ['', ' ', 'abc', '1.5', '1e3', '0x10', '+7', '12 34']) assertBadSeed(s);
});

test('numbers that are not exact whole numbers are rejected', () => {
  for (const n of [1.5, NaN, Infinity, 2 ** 53 + 2]) assertBadSeed(n);
});
