// TorchGenerator reproduces torch.Generator().manual_seed(s) + torch.randn / torch.rand on CPU (float32).
// Vectors are torch 1.13's (engine-prior-art §5.1); the golden case rng-torch-cpu checks many more bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.js';
import { TORCH_DEFAULT_SEED, TorchGenerator } from '../../../src/engine/rng/torch-cpu.js';

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`);
  }
}

const randn = (seed: bigint | number | string, shape: number[]): Float32Array => new TorchGenerator(seed).randn(shape);

test('randn with fewer than 16 elements takes the scalar double path: seed 0, randn(3)', () => {
  assertClose(randn(0, [3]), [1.541, -0.2934, -2.1788], 5e-5);
});

test('randn with 16 elements transforms one block: seed 0 starts -1.12584, -1.15236, ...', () => {
  const expected = [-1.12584, -1.15236, -0.250579, -0.433879, 0.84871, 0.692009];
  assertClose(randn(0, [16]).subarray(0, 6), expected, 5e-6);
  // The shape only matters through its element count.
  assert.deepEqual(randn(0, [1, 4, 2, 2]), randn(0, [16]));
});

test('randn recomputes the last 16 values from fresh uniforms when the size is not a multiple of 16', () => {
  const x = randn(0, [20]);
  assertClose(x.subarray(16), [0.931827, 1.259009, 2.004981, 0.053737], 5e-6);
  // The first value is outside the recomputed window, so it equals randn(16)'s; the rest are redrawn.
  const y = randn(0, [17]);
  const block = randn(0, [16]);
  assert.equal(y[0], block[0]);
  assert.notEqual(y[1], block[1]);
});

test('randn of an SDXL-sized latent: seeds 42 and 1234', () => {
  assertClose(randn(42, [65536]).subarray(0, 3), [1.926915, 1.487284, 0.900717]);
  assertClose(randn(1234, [4, 128, 128]).subarray(0, 3), [-0.111719, -0.49659, 0.163074]);
});

test("randn follows avx_mathfun's float32 polynomials, not a correctly rounded log (torch on AVX2)", () => {
  // Element 213 of seed 0's [1,4,64,64] draw: torch gives this; a correctly rounded log gives 0.98683614.
  assert.equal(randn(0, [1, 4, 64, 64])[213], 0.9868360757827759);
});

test('rand uses the low 24 bits of each 32-bit draw: seed 0 gives (2357136044 & 0xFFFFFF) / 2^24', () => {
  assert.deepEqual(Array.from(new TorchGenerator(0).rand([1])), [(2357136044 & 0xffffff) / 2 ** 24]);
  assert.equal(new TorchGenerator(0).rand([1])[0], Math.fround(0.49625659));
});

test('randFloat64 takes two draws per value, the first as the high word, masked to 53 bits', () => {
  const hi = 2357136044;
  const lo = 2546248239;
  const expected = ((hi % 2 ** 21) * 2 ** 32 + lo) / 2 ** 53;
  assert.equal(new TorchGenerator(0).randFloat64([1])[0], expected);
});

test('only the low 32 bits of the seed reach mt19937: 5 and 2^32+5 draw the same numbers', () => {
  assert.deepEqual(randn(5, [40]), randn(2n ** 32n + 5n, [40]));
  assert.deepEqual(randn(7, [5]), randn('4294967303', [5]));
  assert.deepEqual(randn(0, [3]), randn('18446744069414584320', [3])); // 2^64 - 2^32
});

test('the full seed is still reported by initialSeed, as torch does', () => {
  assert.equal(new TorchGenerator('4294967303').initialSeed(), 4294967303n);
});

test('seeds are accepted as numbers, bigints and decimal strings alike', () => {
  assert.deepEqual(randn(3572004920, [20]), randn('3572004920', [20]));
  assert.deepEqual(randn(3572004920, [20]), randn(3572004920n, [20]));
});

test('an unseeded generator starts from torch default seed 67280421310721', () => {
  assert.equal(new TorchGenerator().initialSeed(), TORCH_DEFAULT_SEED);
  assert.deepEqual(new TorchGenerator().randn([20]), randn(67280421310721n, [20]));
});

test('the scalar path caches its second normal in the generator, across randn calls', () => {
  const g = new TorchGenerator(0);
  const joined = [...g.randn([7]), ...g.randn([7])];
  assert.deepEqual(joined, Array.from(randn(0, [14])));
});

test('a block draw leaves the cached normal in place for the next scalar draw', () => {
  const g = new TorchGenerator(0);
  const first = g.randn([1]);
  g.randn([32]);
  const cached = g.randn([1]);
  const pair = randn(0, [2]);
  assert.equal(first[0], pair[0]);
  assert.equal(cached[0], pair[1]);
});

test('consecutive block draws continue the uniform stream: randn(17) consumes 17 + 16 draws', () => {
  const g = new TorchGenerator(9);
  g.randn([17]);
  const next = g.rand([2]);
  assert.deepEqual(next, new TorchGenerator(9).rand([35]).subarray(33));
});

test('manualSeed restarts the stream and drops the cached normal', () => {
  const g = new TorchGenerator(0);
  const a = g.randn([1]);
  g.manualSeed(0);
  assert.deepEqual(g.randn([1]), a);
});

test('manualSeed returns the generator, like torch.Generator.manual_seed', () => {
  const g = new TorchGenerator();
  assert.equal(g.manualSeed(1), g);
});

test('an empty shape is a scalar (one element); a zero dimension draws nothing', () => {
  assert.deepEqual(new TorchGenerator(0).randn([]), randn(0, [1]));
  const g = new TorchGenerator(0);
  assert.equal(g.randn([2, 0]).length, 0);
  assert.deepEqual(g.rand([1]), new TorchGenerator(0).rand([1]));
});

test('invalid shapes are rejected with bad_shape', () => {
  for (const shape of [[-1], [1.5], [NaN]]) {
    assert.throws(() => new TorchGenerator(0).randn(shape), (e: unknown) => e instanceof EngineError && e.code === 'bad_shape');
  }
});

test('an SDXL latent [1,4,128,128] draws well within an interactive budget', () => {
  const g = new TorchGenerator(1);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    g.randn([1, 4, 128, 128]);
    best = Math.min(best, performance.now() - t0);
  }
  // ~10 ms on a shared 2-core box; the bound is loose so only a real regression trips it.
  assert.ok(best < 200, `best of 3: ${best.toFixed(1)} ms`);
});
