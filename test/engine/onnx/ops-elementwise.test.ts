// Arithmetic, elementwise functions, matmul and reductions: ORT CPU vs plain TypeScript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClose, binary, erf, gelu, geluTanh, map, matmul, nd, randn, sigmoid, softmax, type Nd,
} from '../../helpers/reference-ops.js';
import type { GraphBuilder, Tensor } from '../../../src/engine/onnx/graph.js';
import { feed, out, runGraph } from './harness.js';

async function unaryCase(op: (g: GraphBuilder, x: Tensor) => Tensor, ref: (x: number) => number, x: Nd, tol = {}): Promise<void> {
  const r = await runGraph((g) => g.output(op(g, g.input('x', x.shape)), 'y'), { x: feed(x) });
  assertClose(out(r, 'y'), map(x, ref), tol);
}

const x = randn([2, 3, 4], 1);
const positive = map(randn([2, 3, 4], 2), (v) => Math.abs(v) + 0.1);

test('add, sub, mul, div broadcast like numpy', async () => {
  const a = randn([2, 3, 4], 3);
  const b = randn([3, 1], 4);
  const r = await runGraph((g) => {
    const ta = g.input('a', a.shape);
    const tb = g.input('b', b.shape);
    g.output(g.add(ta, tb), 'add');
    g.output(g.sub(ta, tb), 'sub');
    g.output(g.mul(ta, tb), 'mul');
    g.output(g.div(ta, tb), 'div');
  }, { a: feed(a), b: feed(b) });
  assertClose(out(r, 'add'), binary(a, b, (p, q) => p + q));
  assertClose(out(r, 'sub'), binary(a, b, (p, q) => p - q));
  assertClose(out(r, 'mul'), binary(a, b, (p, q) => p * q));
  assertClose(out(r, 'div'), binary(a, b, (p, q) => p / q), { rtol: 1e-5, atol: 1e-4 });
});

test('numbers become scalar constants on either side', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    g.output(g.sub(1, g.mul(t, 0.5)), 'y');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), map(x, (v) => 1 - 0.5 * v));
});

test('pow', async () => {
  await unaryCase((g, t) => g.pow(t, 1.5), (v) => v ** 1.5, positive);
});

test('sqrt, exp, cos, sin, neg, sigmoid, tanh, erf', async () => {
  await unaryCase((g, t) => g.sqrt(t), Math.sqrt, positive);
  await unaryCase((g, t) => g.exp(t), Math.exp, x);
  await unaryCase((g, t) => g.cos(t), Math.cos, x);
  await unaryCase((g, t) => g.sin(t), Math.sin, x);
  await unaryCase((g, t) => g.neg(t), (v) => -v, x);
  await unaryCase((g, t) => g.sigmoid(t), sigmoid, x);
  await unaryCase((g, t) => g.tanh(t), Math.tanh, x);
  await unaryCase((g, t) => g.erf(t), erf, x);
});

test('gelu is exact (erf) by default, tanh on request', async () => {
  const wide = randn([4, 16], 5, 3);
  await unaryCase((g, t) => g.gelu(t), gelu, wide);
  await unaryCase((g, t) => g.gelu(t, 'tanh'), geluTanh, wide);
});

test('gelu before opset 20 is written with Erf', async () => {
  const wide = randn([4, 16], 6, 3);
  const r = await runGraph((g) => g.output(g.gelu(g.input('x', wide.shape)), 'y'), { x: feed(wide) }, { opset: 19 });
  assertClose(out(r, 'y'), map(wide, gelu));
});

test('quickGelu is x·sigmoid(1.702x), silu is x·sigmoid(x)', async () => {
  await unaryCase((g, t) => g.quickGelu(t), (v) => v * sigmoid(1.702 * v), x);
  await unaryCase((g, t) => g.silu(t), (v) => v * sigmoid(v), x);
});

test('softmax over any axis', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    g.output(g.softmax(t), 'last');
    g.output(g.softmax(t, 1), 'mid');
  }, { x: feed(x) });
  assertClose(out(r, 'last'), softmax(x, -1));
  assertClose(out(r, 'mid'), softmax(x, 1));
});

test('matmul with batch broadcasting', async () => {
  const a = randn([2, 3, 5], 7);
  const b = randn([5, 4], 8);
  const r = await runGraph((g) => {
    const y = g.matmul(g.input('a', a.shape), g.input('b', b.shape));
    assert.deepEqual(y.shape, [2, 3, 4]);
    g.output(y, 'y');
  }, { a: feed(a), b: feed(b) });
  assertClose(out(r, 'y'), matmul(a, b), { atol: 1e-5 });
});

test('reduceMean keeps or drops the reduced axes', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const kept = g.reduceMean(t, [-1]);
    const dropped = g.reduceMean(t, [0, 2], false);
    assert.deepEqual(kept.shape, [2, 3, 1]);
    assert.deepEqual(dropped.shape, [3]);
    g.output(kept, 'kept');
    g.output(dropped, 'dropped');
  }, { x: feed(x) });
  const expectKept = Array.from({ length: 6 }, (_, i) => x.data.slice(i * 4, i * 4 + 4).reduce((a, b) => a + b) / 4);
  assertClose(out(r, 'kept'), expectKept);
  const expectDropped = [0, 1, 2].map((c) => {
    let s = 0;
    for (let b = 0; b < 2; b++) for (let k = 0; k < 4; k++) s += x.data[(b * 3 + c) * 4 + k]!;
    return s / 8;
  });
  assertClose(out(r, 'dropped'), expectDropped);
});

test('where picks by a bool condition; cast converts types', async () => {
  const positive = Uint8Array.from(x.data, (v) => (v > 0 ? 1 : 0));
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    g.output(g.where(g.input('positive', x.shape, 'bool'), t, 0), 'relu');
    g.output(g.cast(g.mul(t, 10), 'int64'), 'truncated');
  }, { x: feed(x), positive: { dtype: 'bool', dims: x.shape, data: positive } });
  assertClose(out(r, 'relu'), map(x, (v) => Math.max(v, 0)));
  const truncated = r['truncated']!;
  assert.equal(truncated.dtype, 'int64');
  assert.deepEqual(Array.from(truncated.data as BigInt64Array, Number), Array.from(x.data, (v) => Math.trunc(Math.fround(Math.fround(v) * 10)) || 0));
});

test('constant() holds values of any dtype', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', [3]);
    g.output(g.add(t, g.constant([1, 2, 3])), 'y');
    g.output(g.constant([7, 8], { dtype: 'int64' }), 'ints');
  }, { x: feed(nd([3], [10, 20, 30])) });
  assertClose(out(r, 'y'), [11, 22, 33]);
  assert.deepEqual(Array.from(r['ints']!.data as BigInt64Array), [7n, 8n]);
});

test('op() emits any other ONNX op, e.g. com.microsoft.QuickGelu', async () => {
  const { attr } = await import('../../../src/engine/onnx/graph.js');
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const [y] = g.op('QuickGelu', [t], [{ dtype: 'float32', shape: t.shape }], { alpha: attr.float(1.702) }, 'com.microsoft');
    g.output(y!, 'y');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), map(x, (v) => v * sigmoid(1.702 * v)));
});
