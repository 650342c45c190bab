// The arithmetic around the nets: float32 as torch rounds it, numpy's rounding to 8 bits, batching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchRows, doubled, guidance, initialLatents, timeIds, toRgb8, unscaleLatents } from '../../../src/engine/pipelines/denoise-math.js';
import { TorchGenerator } from '../../../src/engine/rng/torch-cpu.js';

test('guidance mixes a [uncond; cond] batch as uncond + g·(cond − uncond), each op rounded to float32', () => {
  const batch = Float32Array.of(0.1, -2, 0.3, 1);
  const out = guidance(batch, 7.5);
  const f = Math.fround;
  assert.deepEqual(Array.from(out), [f(f(0.1) + f(7.5 * f(f(0.3) - f(0.1)))), f(-2 + f(7.5 * 3))]);
});

test('add_time_ids are (H, W, 0, 0, H, W) on every row', () => {
  assert.deepEqual(Array.from(timeIds(48, 80, 2)), [48, 80, 0, 0, 48, 80, 48, 80, 0, 0, 48, 80]);
});

test('CFG batches are [negatives…, positives…], each repeated per sample', () => {
  assert.deepEqual(Array.from(batchRows([Float32Array.of(1, 2), Float32Array.of(3, 4)], 2)), [1, 2, 1, 2, 3, 4, 3, 4]);
  assert.deepEqual(Array.from(doubled(Float32Array.of(5, 6))), [5, 6, 5, 6]);
});

test('initial latents are one randn draw for the whole batch, times init_noise_sigma', () => {
  const got = initialLatents(new TorchGenerator(7), [2, 4, 2, 2], 14.6146);
  const want = new TorchGenerator(7).randn([2, 4, 2, 2]).map((v) => Math.fround(v * Math.fround(14.6146)));
  assert.deepEqual(got, want);
});

test('latents are divided by scaling_factor in float32', () => {
  assert.deepEqual(unscaleLatents(Float32Array.of(1, -0.5), 0.13025), Float32Array.of(1 / Math.fround(0.13025), -0.5 / Math.fround(0.13025)));
});

test('pixels: clamp(x/2 + 0.5, 0, 1)·255 rounded half to even (numpy), channels interleaved', () => {
  // x = 0 → 127.5 → 128 (up to even); x = -0.4941176176071167 → exactly 64.5 in float32 → 64 (down to even);
  // -1 → 0; beyond +1 clamps to 255.
  // planes R = [0, -1], G = [3, -0.4941…], B = [1, -7] → pixels (128, 255, 255), (0, 64, 0)
  const chw = Float32Array.of(0, -1, 3, -0.4941176176071167, 1, -7);
  assert.deepEqual(Array.from(toRgb8(chw, 1, 2)), [128, 255, 255, 0, 64, 0]);
});
