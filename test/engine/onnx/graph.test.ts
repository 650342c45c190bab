// Builder bookkeeping: shape inference, naming, pruning and the mistakes it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { broadcast, matmulShape, reshapeShape } from '../../../src/engine/onnx/shape.js';

test('broadcast follows numpy and keeps named dims', () => {
  assert.deepEqual(broadcast(['B', 1, 4], [3, 1]), ['B', 3, 4]);
  assert.deepEqual(broadcast(['B', 'S'], ['B', 1]), ['B', 'S']);
  assert.deepEqual(broadcast(['B'], ['S']), ['?']);
  assert.throws(() => broadcast([2, 3], [4, 3]), /cannot broadcast/);
});

test('matmul shapes broadcast batch dims and check the inner dim', () => {
  assert.deepEqual(matmulShape(['B', 8, 77, 64], [1, 8, 64, 77]), ['B', 8, 77, 77]);
  assert.deepEqual(matmulShape([5], [5, 3]), [3]);
  assert.throws(() => matmulShape([2, 3], [4, 5]), /inner dims/);
});

test('reshape infers -1 through copied and named dims', () => {
  assert.deepEqual(reshapeShape([2, 320, 64, 64], [0, 32, -1]), [2, 32, 40960]);
  assert.deepEqual(reshapeShape(['B', 'S', 640], [0, 0, 10, -1]), ['B', 'S', 10, 64]);
  assert.deepEqual(reshapeShape(['B', 'S', 640], [-1, 640]), ['?', 640]);
  assert.throws(() => reshapeShape([2, 3], [4, 2]), /6 elements/);
});

test('a tensor from another graph is refused', () => {
  const a = new GraphBuilder();
  const b = new GraphBuilder();
  const x = a.input('x', [1]);
  assert.throws(() => b.sigmoid(x), /another graph/);
});

test('mixed dtypes, duplicate names and wrong weight sizes are refused', () => {
  const g = new GraphBuilder();
  const x = g.input('x', [2]);
  assert.throws(() => g.add(x, g.input('i', [2], 'int64')), /different dtypes/);
  assert.throws(() => g.input('x', [2]), /already used/);
  assert.throws(() => g.param('w', [2, 2], new Float32Array(3)), /3 values/);
  assert.throws(() => g.build(), /no outputs/);
});

test('weights no node reads are left out; a lazy weight of the wrong size fails at write time', async () => {
  const g = new GraphBuilder();
  g.param('unused', [4], new Float32Array(4));
  const w = g.param('w', [2], () => new Float32Array(3));
  g.output(g.mul(g.input('x', [2]), w), 'y');
  const model = g.build();
  assert.deepEqual(model.initializers.map((i) => i.name), ['w']);
  await assert.rejects(model.initializers[0]!.load(), /3 values for shape \[2\]/);
});

test('small equal constants are shared', () => {
  const g = new GraphBuilder();
  const x = g.input('x', [2]);
  g.output(g.mul(g.mul(x, 1.702), 1.702), 'y');
  assert.equal(g.build().initializers.length, 1);
});
