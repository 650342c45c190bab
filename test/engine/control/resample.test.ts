// PIL-compatible resampling: reference values produced by Pillow's Image.resize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pilResize } from '../../../src/engine/control/resample.js';

const row = Uint8Array.from([0, 50, 100, 250]);

test('bilinear shrinking is antialiased: the filter widens with the scale (PIL, not OpenCV)', () => {
  assert.deepEqual([...pilResize(row, 4, 1, 1, 2, 1, 'bilinear')], [36, 157]);
});

test('bicubic enlarging matches PIL, overshoot clipped to 0..255', () => {
  assert.deepEqual([...pilResize(row, 4, 1, 1, 7, 1, 'bicubic')], [0, 13, 46, 69, 108, 207, 255]);
});

test('lanczos matches PIL', () => {
  assert.deepEqual([...pilResize(row, 4, 1, 1, 3, 1, 'lanczos')], [10, 69, 218]);
});

test('RGB is resampled per channel, horizontal pass first', () => {
  const src = Uint8Array.from({ length: 18 }, (_, i) => i * 13);
  const expected = [0, 13, 26, 16, 29, 42, 39, 52, 65, 62, 75, 88, 78, 91, 104, 29, 42, 55, 45, 58, 71, 68, 81, 94, 91, 104, 117, 107, 120, 133, 88, 101, 114, 104, 117, 130, 127, 140, 153, 150, 163, 176, 166, 179, 192, 117, 130, 143, 133, 146, 159, 156, 169, 182, 179, 192, 205, 195, 208, 221];
  assert.deepEqual([...pilResize(src, 3, 2, 3, 5, 4, 'bilinear')], expected);
});

test('the same size is a copy, and a constant image stays constant under every filter', () => {
  const same = pilResize(row, 4, 1, 1, 4, 1);
  assert.deepEqual(same, row);
  assert.notEqual(same, row);
  const flat = new Uint8Array(9 * 7 * 3).fill(123);
  for (const f of ['box', 'bilinear', 'hamming', 'bicubic', 'lanczos'] as const) {
    assert.ok(pilResize(flat, 9, 7, 3, 4, 11, f).every((v) => v === 123), f);
  }
});

test('bad sizes are rejected', () => {
  assert.throws(() => pilResize(row, 4, 1, 1, 0, 1), RangeError);
  assert.throws(() => pilResize(row, 3, 1, 1, 2, 1), RangeError);
});
