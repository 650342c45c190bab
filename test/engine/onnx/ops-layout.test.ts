// Layout ops: reshape, transpose, concat, split, slice, gather, (un)squeeze, expand, shapeOf.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose, nd, randn, transpose, type Nd } from '../../helpers/reference-ops.js';
import { feed, out, runGraph } from './harness.js';

const x = randn([2, 3, 4], 11);
/** x[b, c, k] */
const el = (a: Nd, ...idx: number[]): number => {
  let p = 0;
  idx.forEach((i, d) => { p = p * a.shape[d]! + i; });
  return a.data[p]!;
};

test('reshape keeps dims with 0 and infers -1; static shapes are inferred', async () => {
  const r = await runGraph((g) => {
    const y = g.reshape(g.input('x', ['B', 3, 4]), [0, -1, 2]);
    assert.deepEqual(y.shape, ['B', 6, 2]);
    g.output(y, 'y');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), x.data);
});

test('reshape to a runtime shape tensor', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const flat = g.reshape(t, [-1]);
    g.output(g.reshape(flat, g.shapeOf(t)), 'y');
    g.output(g.shapeOf(t), 'shape');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), x.data);
  assert.deepEqual(Array.from(r['shape']!.data as BigInt64Array), [2n, 3n, 4n]);
});

test('transpose permutes axes', async () => {
  const r = await runGraph((g) => {
    const y = g.transpose(g.input('x', x.shape), [2, 0, 1]);
    assert.deepEqual(y.shape, [4, 2, 3]);
    g.output(y, 'y');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), transpose(x, [2, 0, 1]));
});

test('concat joins along an axis', async () => {
  const y = randn([2, 1, 4], 12);
  const r = await runGraph((g) => {
    const c = g.concat([g.input('x', x.shape), g.input('y', y.shape)], 1);
    assert.deepEqual(c.shape, [2, 4, 4]);
    g.output(c, 'c');
  }, { x: feed(x), y: feed(y) });
  const expected: number[] = [];
  for (let b = 0; b < 2; b++) {
    expected.push(...x.data.slice(b * 12, b * 12 + 12), ...y.data.slice(b * 4, b * 4 + 4));
  }
  assertClose(out(r, 'c'), expected);
});

test('split into equal parts or given sizes', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const [a, b] = g.split(t, 2, -1);
    const [c, d] = g.split(t, [1, 2], 1);
    assert.deepEqual(a!.shape, [2, 3, 2]);
    assert.deepEqual(d!.shape, [2, 2, 4]);
    g.output(a!, 'a');
    g.output(b!, 'b');
    g.output(c!, 'c');
    g.output(d!, 'd');
  }, { x: feed(x) });
  const pick = (f: (b: number, c: number, k: number) => boolean): number[] => {
    const o: number[] = [];
    for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let k = 0; k < 4; k++) if (f(b, c, k)) o.push(el(x, b, c, k));
    return o;
  };
  assertClose(out(r, 'a'), pick((_, __, k) => k < 2));
  assertClose(out(r, 'b'), pick((_, __, k) => k >= 2));
  assertClose(out(r, 'c'), pick((_, c) => c === 0));
  assertClose(out(r, 'd'), pick((_, c) => c > 0));
});

test('split into parts of a symbolic dim uses num_outputs', async () => {
  const r = await runGraph((g) => {
    const [a, b] = g.split(g.input('x', [2, 3, 'K']), 2, 2);
    g.output(a!, 'a');
    g.output(b!, 'b');
  }, { x: feed(x) });
  assert.equal(out(r, 'a').length, 12);
  assert.equal(out(r, 'b')[0], Math.fround(el(x, 0, 0, 2)));
});

test('slice with negative bounds and steps', async () => {
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const s = g.slice(t, [1, -3], [3, 1_000_000], [1, 2], [1, 2]);
    assert.deepEqual(s.shape, [2, 2, 2]);
    g.output(s, 's');
    const rev = g.slice(t, [-1], [-1_000_000], [2], [-1]);
    assert.deepEqual(rev.shape, [2, 3, 4]);
    g.output(rev, 'rev');
  }, { x: feed(x) });
  const s: number[] = [];
  for (let b = 0; b < 2; b++) for (let c = 1; c < 3; c++) for (const k of [1, 3]) s.push(el(x, b, c, k));
  assertClose(out(r, 's'), s);
  const rev: number[] = [];
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let k = 3; k >= 0; k--) rev.push(el(x, b, c, k));
  assertClose(out(r, 'rev'), rev);
});

test('gather by a number drops the axis, by a list keeps it, by a tensor uses its shape', async () => {
  const table = randn([5, 3], 13);
  const r = await runGraph((g) => {
    const t = g.input('t', table.shape);
    const one = g.gather(t, 2);
    assert.deepEqual(one.shape, [3]);
    g.output(one, 'one');
    g.output(g.gather(t, [4, 0], 0), 'rows');
    g.output(g.gather(t, [2], 1), 'col');
    const ids = g.input('ids', [1, 2], 'int64');
    const emb = g.gather(t, ids);
    assert.deepEqual(emb.shape, [1, 2, 3]);
    g.output(emb, 'emb');
  }, { t: feed(table), ids: { dtype: 'int64', dims: [1, 2], data: BigInt64Array.from([3n, 1n]) } });
  const row = (i: number): number[] => Array.from(table.data.slice(i * 3, i * 3 + 3));
  assertClose(out(r, 'one'), row(2));
  assertClose(out(r, 'rows'), [...row(4), ...row(0)]);
  assertClose(out(r, 'col'), [0, 1, 2, 3, 4].map((i) => el(table, i, 2)));
  assertClose(out(r, 'emb'), [...row(3), ...row(1)]);
});

test('unsqueeze and squeeze add and remove unit axes', async () => {
  const r = await runGraph((g) => {
    const u = g.unsqueeze(g.input('x', x.shape), [0, -1]);
    assert.deepEqual(u.shape, [1, 2, 3, 4, 1]);
    const s = g.squeeze(u, [0, 4]);
    assert.deepEqual(s.shape, [2, 3, 4]);
    g.output(u, 'u');
    g.output(s, 's');
  }, { x: feed(x) });
  assertClose(out(r, 'u'), x.data);
  assertClose(out(r, 's'), x.data);
});

test('expand broadcasts to a shape', async () => {
  const v = nd([3, 1], [1, 2, 3]);
  const r = await runGraph((g) => {
    const e = g.expand(g.input('v', v.shape), [2, 1, 2]);
    assert.deepEqual(e.shape, [2, 3, 2]);
    g.output(e, 'e');
  }, { v: feed(v) });
  assertClose(out(r, 'e'), [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]);
});

test('scope() prefixes node names', async () => {
  const { GraphBuilder } = await import('../../../src/engine/onnx/graph.js');
  const g = new GraphBuilder();
  const y = g.scope('down_blocks.0', () => g.silu(g.input('x', [1])));
  assert.match(y.name, /^down_blocks\.0\/Mul_\d+$/);
});
