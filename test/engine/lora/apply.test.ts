// withLoras / mergeLoras: W' = W + Σ scale·alpha/rank·up@down (convs flattened), DoRA as PEFT computes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LoraDelta, LoraFactors } from '../../../src/engine/formats/lora.js';
import type { WeightSource } from '../../../src/engine/formats/keymaps/source.js';
import type { TensorSource } from '../../../src/engine/nets/sdxl-weights.js';
import { halfToFloat, toFloat16 } from '../../../src/engine/formats/dtype.js';
import { loraCacheKey, loraSetKey, mergeLoras, withLoras } from '../../../src/engine/lora/apply.js';
import { ramp } from './helpers.js';

function delta(target: string, shape: number[], rank: number, alpha: number, f: LoraFactors, dora?: 'out' | 'in'): LoraDelta {
  const [out, inp, kh, kw] = shape as [number, number, number?, number?];
  const d: LoraDelta = {
    target: `${target}.weight`, source: `lora_${target}`, targetShape: shape, rank, alpha,
    downShape: kh === undefined ? [rank, inp] : [rank, inp, kh, kw!], upShape: [out, rank], load: () => f,
  };
  if (dora) d.dora = dora;
  return d;
}

function source(tensors: Record<string, { shape: number[]; data: Float32Array }>): WeightSource {
  return {
    names: () => Object.keys(tensors),
    has: (n) => n in tensors,
    info: (n) => ({ dtype: 'F32', shape: tensors[n]!.shape }),
    read: (n) => tensors[n]!.data,
    readFloat32: (n) => tensors[n]!.data,
  };
}

/** Σ_j up[o, j] · down[j, k], the textbook way. */
function product(up: Float32Array, down: Float32Array, rows: number, rank: number): Float64Array {
  const cols = down.length / rank;
  const out = new Float64Array(rows * cols);
  for (let o = 0; o < rows; o++) for (let k = 0; k < cols; k++) for (let j = 0; j < rank; j++) out[o * cols + k] += up[o * rank + j]! * down[j * cols + k]!;
  return out;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `at ${i}: ${actual[i]} vs ${expected[i]}`);
}

const W = ramp(6 * 5, 0.5, 3); // [6, 5]
const A: LoraFactors = { down: ramp(2 * 5, 0.3, 1), up: ramp(6 * 2, 0.2, 2) }; // rank 2
const B: LoraFactors = { down: ramp(3 * 5, 0.4, 4), up: ramp(6 * 3, 0.1, 5) }; // rank 3

test('one linear LoRA adds scale · alpha / rank · up @ down', () => {
  const merged = mergeLoras(W, [{ delta: delta('w', [6, 5], 2, 1, A), factors: A, scale: 0.7 }]);
  const p = product(A.up, A.down, 6, 2);
  close(merged, W.map((w, i) => w + 0.7 * (1 / 2) * p[i]!));
});

test('several LoRAs on one weight add up, each with its own scale and alpha / rank', () => {
  const merged = mergeLoras(W, [
    { delta: delta('w', [6, 5], 2, 4, A), factors: A, scale: 0.5 },
    { delta: delta('w', [6, 5], 3, 3, B), factors: B, scale: -1 },
  ]);
  const pa = product(A.up, A.down, 6, 2);
  const pb = product(B.up, B.down, 6, 3);
  close(merged, W.map((w, i) => w + 0.5 * 2 * pa[i]! - 1 * 1 * pb[i]!));
});

test('a 3×3 LoCon conv: the down kernel flattened to [r, in·9], up [out, r, 1, 1] read as [out, r]', () => {
  const w = ramp(4 * 3 * 9, 0.2); // [4, 3, 3, 3]
  const f: LoraFactors = { down: ramp(2 * 3 * 9, 0.3, 7), up: ramp(4 * 2, 0.5, 8) };
  const merged = mergeLoras(w, [{ delta: delta('conv', [4, 3, 3, 3], 2, 1, f), factors: f, scale: 1 }]);
  // element [o=3, c=2, y=1, x=0] by the convolution-kernel definition
  let d = 0;
  for (let j = 0; j < 2; j++) d += f.up[3 * 2 + j]! * f.down[((j * 3 + 2) * 3 + 1) * 3 + 0]!;
  const at = ((3 * 3 + 2) * 3 + 1) * 3 + 0;
  assert.ok(Math.abs(merged[at]! - (w[at]! + 0.5 * d)) < 1e-7);
});

test('DoRA (PEFT): each output row becomes magnitude · V / ‖V‖ with V = W + scale · alpha / rank · up @ down', () => {
  const m = Float32Array.from({ length: 6 }, (_, o) => 0.5 + o * 0.1);
  const f: LoraFactors = { ...A, doraScale: m };
  const merged = mergeLoras(W, [{ delta: delta('w', [6, 5], 2, 2, f, 'out'), factors: f, scale: 0.8 }]);
  const p = product(A.up, A.down, 6, 2);
  for (let o = 0; o < 6; o++) {
    const v = Array.from({ length: 5 }, (_, k) => W[o * 5 + k]! + 0.8 * p[o * 5 + k]!);
    const norm = Math.hypot(...v);
    close(merged.subarray(o * 5, o * 5 + 5), v.map((x) => (m[o]! * x) / norm));
  }
});

test('DoRA with a per-input magnitude (LyCORIS [1, in]) normalizes V\'s input columns', () => {
  const m = Float32Array.from({ length: 5 }, (_, c) => 1 + c * 0.2);
  const f: LoraFactors = { ...A, doraScale: m };
  const merged = mergeLoras(W, [{ delta: delta('w', [6, 5], 2, 2, f, 'in'), factors: f, scale: 1 }]);
  const p = product(A.up, A.down, 6, 2);
  for (let c = 0; c < 5; c++) {
    const col = Array.from({ length: 6 }, (_, o) => W[o * 5 + c]! + p[o * 5 + c]!);
    const norm = Math.hypot(...col);
    close(Array.from({ length: 6 }, (_, o) => merged[o * 5 + c]!), col.map((x) => (m[c]! * x) / norm));
  }
});

test('withLoras patches only the targeted weights, merges on read, and keeps the base untouched', () => {
  const base = source({ 'w.weight': { shape: [6, 5], data: W.slice() }, 'b.bias': { shape: [6], data: ramp(6) } });
  const patched = withLoras(base, [{ deltas: [delta('w', [6, 5], 2, 2, A)], scale: 1 }]);
  assert.deepEqual(patched.names(), ['w.weight', 'b.bias']);
  assert.equal(patched.readFloat32('b.bias'), base.readFloat32('b.bias'));
  const p = product(A.up, A.down, 6, 2);
  close(patched.readFloat32('w.weight'), W.map((w, i) => w + p[i]!));
  assert.deepEqual(base.readFloat32('w.weight'), W);
});

test('scale 0 (or no deltas) leaves the source as it is', () => {
  const base = source({ 'w.weight': { shape: [6, 5], data: W } });
  assert.equal(withLoras(base, [{ deltas: [delta('w', [6, 5], 2, 2, A)], scale: 0 }]), base);
  assert.equal(withLoras(base, []), base);
});

test('a delta for a weight the model lacks, or of another shape, is refused as incompatible', () => {
  const base = source({ 'w.weight': { shape: [6, 5], data: W } });
  assert.throws(() => withLoras(base, [{ deltas: [delta('x', [6, 5], 2, 2, A)], scale: 1 }]), { code: 'lora_incompatible' });
  assert.throws(() => withLoras(base, [{ deltas: [delta('w', [5, 6], 2, 2, A)], scale: 1 }]), { code: 'lora_incompatible' });
});

test('a float16 weight read raw through a TensorSource comes back as the merged values rounded to float16', () => {
  const half = toFloat16(W);
  const base: TensorSource = {
    has: (n) => n === 'w.weight',
    info: () => ({ dtype: 'F16', shape: [6, 5] }),
    read: () => half,
    readFloat32: () => Float32Array.from(half, halfToFloat),
  };
  const patched = withLoras(base, [{ deltas: [delta('w', [6, 5], 2, 2, A)], scale: 1 }]);
  const expected = toFloat16(patched.readFloat32('w.weight'));
  assert.deepEqual(patched.read('w.weight'), expected);
  assert.equal(patched.info('w.weight').dtype, 'F16');
});

test('the LoRA-set key changes with the LoRAs, their scales and their order, and is empty without any', () => {
  const k = loraSetKey([{ id: 'a', scale: 0.7 }, { id: 'b', scale: 1 }]);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.notEqual(k, loraSetKey([{ id: 'a', scale: 0.8 }, { id: 'b', scale: 1 }]));
  assert.notEqual(k, loraSetKey([{ id: 'b', scale: 1 }, { id: 'a', scale: 0.7 }]));
  assert.equal(loraSetKey([]), '');
  assert.equal(loraSetKey([{ id: 'a', scale: 0 }]), '');
  assert.equal(loraCacheKey('base', []), 'base');
  assert.notEqual(loraCacheKey('base', [{ id: 'a', scale: 0.7 }]), 'base');
});
