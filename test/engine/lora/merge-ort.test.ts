// The LoRA merge on ONNX Runtime (gemm-worker.ts) gives the JS merge's W' up to float32 rounding:
// plain LoRAs stacked into one product, DoRA per PEFT / LyCORIS, 3×3 LoCon convs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LoraFactors } from '../../../src/engine/formats/lora.js';
import { closeLoraMergeWorker, configureLoraMerge, mergeLoras, type LoadedPatch } from '../../../src/engine/lora/apply.js';
import { ramp } from './helpers.js';

after(async () => {
  configureLoraMerge({});
  await closeLoraMergeWorker();
});

function patch(shape: number[], rank: number, alpha: number, scale: number, seed: number, dora?: 'out' | 'in'): LoadedPatch {
  const [out, inp, kh = 1, kw = 1] = shape as [number, number, number?, number?];
  const factors: LoraFactors = { down: ramp(rank * inp * kh * kw, 0.3, seed), up: ramp(out * rank, 0.2, seed + 1) };
  if (dora) factors.doraScale = Float32Array.from({ length: dora === 'out' ? out : inp }, (_, i) => 0.5 + (i % 7) * 0.1);
  return { delta: { rank, alpha, targetShape: shape, ...(dora ? { dora } : {}) }, factors, scale };
}

/** Both kernels on the same patches; they agree to a few float32 ulps of the largest value. */
function agree(base: Float32Array, patches: LoadedPatch[]): void {
  configureLoraMerge({ kernel: 'js' });
  const js = mergeLoras(base, patches);
  configureLoraMerge({ kernel: 'ort', threads: 1 });
  const ort = mergeLoras(base, patches);
  assert.equal(ort.length, js.length);
  let largest = 0;
  let err = 0;
  for (let i = 0; i < js.length; i++) {
    largest = Math.max(largest, Math.abs(js[i]!));
    err = Math.max(err, Math.abs(js[i]! - ort[i]!));
  }
  assert.ok(err <= 4 * 2 ** -23 * Math.max(1, largest), `max difference ${err} (largest value ${largest})`);
  assert.notDeepEqual(ort, base);
}

test('a linear with two plain LoRAs (stacked into one product) and a DoRA one: ORT matches JS', () => {
  const shape = [192, 160];
  const base = ramp(192 * 160, 0.5, 3);
  agree(base, [patch(shape, 8, 4, 0.7, 1), patch(shape, 4, 4, -1, 5), patch(shape, 8, 8, 0.8, 9, 'out')]);
});

test('a 3×3 LoCon conv, plain and with a per-input-channel DoRA magnitude: ORT matches JS', () => {
  const shape = [64, 48, 3, 3];
  const base = ramp(64 * 48 * 9, 0.2, 7);
  agree(base, [patch(shape, 8, 1, 1, 11)]);
  agree(base, [patch(shape, 8, 4, 0.5, 13, 'in')]);
});

test('an ORT merge leaves the base weight and the factors as they were', () => {
  configureLoraMerge({ kernel: 'ort', threads: 1 });
  const base = ramp(128 * 96, 0.5);
  const p = patch([128, 96], 8, 8, 1, 2);
  const copies = [base.slice(), p.factors.up.slice(), p.factors.down.slice()];
  mergeLoras(base, [p]);
  assert.deepEqual([base, p.factors.up, p.factors.down], copies);
});

test('when ONNX Runtime cannot merge, auto falls back to the JS merge with a warning, and ort fails with lora_merge_failed', async () => {
  const base = ramp(128 * 96, 0.5, 1);
  const p = patch([128, 96], 8, 8, 1, 4);
  configureLoraMerge({ kernel: 'js' });
  const js = mergeLoras(base, [p]);
  configureLoraMerge({ kernel: 'ort', threads: -1 }); // ORT refuses the session
  assert.throws(() => mergeLoras(base, [p]), { code: 'lora_merge_failed' });
  const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
  configureLoraMerge({ kernel: 'auto', threads: -1, minOrtMacs: 0 });
  assert.deepEqual(mergeLoras(base, [p]), js);
  assert.match((await warned).message, /fall back to JavaScript/);
  assert.deepEqual(mergeLoras(base, [p]), js); // and stays there
});
