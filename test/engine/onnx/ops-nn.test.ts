// Layers: linear, conv2d, groupNorm, layerNorm, attention, resize — ORT CPU vs torch-semantics references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertClose, attention, conv2d, f32, groupNorm, layerNorm, linear, nd, randn, resize,
} from '../../helpers/reference-ops.js';
import { feed, out, runGraph } from './harness.js';

test('linear takes a torch [out, in] weight, given eagerly or by a loader', async () => {
  const x = randn([2, 3, 8], 21);
  const w = randn([5, 8], 22);
  const b = randn([5], 23);
  let loads = 0;
  const r = await runGraph((g) => {
    const t = g.input('x', ['B', 3, 8]);
    const y = g.linear(t, g.param('fc.weight', [5, 8], () => { loads++; return f32(w); }), g.param('fc.bias', [5], f32(b)));
    assert.deepEqual(y.shape, ['B', 3, 5]);
    g.output(y, 'y');
    g.output(g.linear(t, g.param('nobias.weight', [5, 8], f32(w))), 'nobias');
  }, { x: feed(x) });
  assert.equal(loads, 1);
  assertClose(out(r, 'y'), linear(x, w, b), { atol: 1e-5 });
  assertClose(out(r, 'nobias'), linear(x, w), { atol: 1e-5 });
});

test('linear on a graph-input weight transposes in the graph', async () => {
  const x = randn([3, 4], 24);
  const w = randn([2, 4], 25);
  const r = await runGraph((g) => g.output(g.linear(g.input('x', x.shape), g.input('w', w.shape)), 'y'), { x: feed(x), w: feed(w) });
  assertClose(out(r, 'y'), linear(x, w), { atol: 1e-5 });
});

for (const c of [
  { name: '3x3, padding 1', opts: { padding: 1 }, w: [6, 4, 3, 3] },
  { name: 'stride 2 (downsample)', opts: { stride: 2, padding: 1 }, w: [4, 4, 3, 3] },
  { name: '1x1', opts: {}, w: [3, 4, 1, 1] },
  { name: 'groups 2, dilation 2', opts: { groups: 2, dilation: 2, padding: 2 }, w: [6, 2, 3, 3] },
] as const) {
  test(`conv2d ${c.name}`, async () => {
    const x = randn([2, 4, 9, 7], 31);
    const w = randn(c.w, 32, 0.3);
    const b = randn([c.w[0]], 33);
    const r = await runGraph((g) => {
      const y = g.conv2d(g.input('x', x.shape), g.param('w', c.w, f32(w)), g.param('b', [c.w[0]], f32(b)), c.opts);
      g.output(y, 'y');
    }, { x: feed(x) });
    const o = c.opts as { stride?: number; padding?: number; dilation?: number; groups?: number };
    assertClose(out(r, 'y'), conv2d(x, w, b, o), { atol: 1e-4 });
  });
}

test('conv2d with explicit [top, left, bottom, right] padding', async () => {
  const x = randn([1, 2, 5, 5], 34);
  const w = randn([2, 2, 3, 3], 35);
  const r = await runGraph((g) => {
    const y = g.conv2d(g.input('x', x.shape), g.param('w', [2, 2, 3, 3], f32(w)), undefined, { stride: 2, padding: [0, 0, 1, 1] });
    assert.deepEqual(y.shape, [1, 2, 2, 2]);
    g.output(y, 'y');
  }, { x: feed(x) });
  // Same as padding the input by 1 on the bottom/right only.
  const padded = nd([1, 2, 6, 6]);
  for (let c = 0; c < 2; c++) for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) padded.data[(c * 6 + i) * 6 + j] = x.data[(c * 5 + i) * 5 + j]!;
  assertClose(out(r, 'y'), conv2d(padded, w, undefined, { stride: 2 }), { atol: 1e-5 });
});

test('groupNorm matches torch GroupNorm, static and symbolic batch', async () => {
  const x = randn([2, 8, 5, 3], 41, 3);
  const w = randn([8], 42);
  const b = randn([8], 43);
  for (const shape of [x.shape, ['N', 8, 'H', 'W']]) {
    const r = await runGraph((g) => {
      const y = g.groupNorm(g.input('x', shape), g.param('w', [8], f32(w)), g.param('b', [8], f32(b)), { groups: 4, eps: 1e-6 });
      assert.deepEqual(y.shape, shape);
      g.output(y, 'y');
    }, { x: feed(x) });
    assertClose(out(r, 'y'), groupNorm(x, w, b, 4, 1e-6), { atol: 2e-5 });
  }
});

test('groupNorm on [N, C, L] (rank 3)', async () => {
  const x = randn([1, 6, 10], 44);
  const w = randn([6], 45);
  const b = randn([6], 46);
  const r = await runGraph((g) => {
    g.output(g.groupNorm(g.input('x', x.shape), g.param('w', [6], f32(w)), g.param('b', [6], f32(b)), { groups: 3 }), 'y');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), groupNorm(x, w, b, 3, 1e-5), { atol: 2e-5 });
});

test('layerNorm over the last dim, with and without bias', async () => {
  const x = randn([2, 5, 16], 51, 2);
  const w = randn([16], 52);
  const b = randn([16], 53);
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    g.output(g.layerNorm(t, g.param('w', [16], f32(w)), g.param('b', [16], f32(b))), 'y');
    g.output(g.layerNorm(t, g.param('w2', [16], f32(w)), undefined, { eps: 1e-6 }), 'nobias');
  }, { x: feed(x) });
  assertClose(out(r, 'y'), layerNorm(x, w, b, 1e-5), { atol: 2e-5 });
  assertClose(out(r, 'nobias'), layerNorm(x, w, undefined, 1e-6), { atol: 2e-5 });
});

for (const fused of [false, true]) {
  const how = fused ? 'fused MultiHeadAttention' : 'MatMul/Softmax';
  test(`attention (${how}): self and cross attention`, async () => {
    const q = randn([2, 5, 16], 61);
    const k = randn([2, 7, 16], 62);
    const v = randn([2, 7, 8], 63);
    const r = await runGraph((g) => {
      const tq = g.input('q', ['B', 'S', 16]);
      const self = g.attention(tq, tq, tq, { heads: 4 });
      assert.deepEqual(self.shape, ['B', 'S', 16]);
      g.output(self, 'self');
      g.output(g.attention(tq, g.input('k', k.shape), g.input('v', v.shape), { heads: 2 }), 'cross');
    }, { q: feed(q), k: feed(k), v: feed(v) }, { fusedAttention: fused });
    assertClose(out(r, 'self'), attention(q, q, q, 4), { atol: 1e-5 });
    assertClose(out(r, 'cross'), attention(q, k, v, 2), { atol: 1e-5 });
  });

  test(`attention (${how}): additive mask`, async () => {
    const q = randn([1, 4, 8], 64);
    const mask = randn([1, 1, 4, 4], 65, 2);
    const r = await runGraph((g) => {
      const tq = g.input('q', q.shape);
      g.output(g.attention(tq, tq, tq, { heads: 2, mask: g.input('mask', mask.shape) }), 'y');
    }, { q: feed(q), mask: feed(mask) }, { fusedAttention: fused });
    assertClose(out(r, 'y'), attention(q, q, q, 2, mask), { atol: 1e-5 });
  });
}

test('attention: bool mask, true = attend', async () => {
  const q = randn([1, 3, 4], 66);
  const keep = [1, 0, 1, 1, 1, 0, 0, 1, 1];
  const r = await runGraph((g) => {
    const tq = g.input('q', q.shape);
    g.output(g.attention(tq, tq, tq, { heads: 1, mask: g.input('keep', [3, 3], 'bool') }), 'y');
  }, { q: feed(q), keep: { dtype: 'bool', dims: [3, 3], data: Uint8Array.from(keep) } });
  const additive = nd([3, 3], keep.map((m) => (m ? 0 : -Infinity)));
  assertClose(out(r, 'y'), attention(q, q, q, 1, additive), { atol: 1e-5 });
});

test('resize: nearest ×2, bilinear ×2, bilinear to a size', async () => {
  const x = randn([1, 2, 3, 4], 71);
  const r = await runGraph((g) => {
    const t = g.input('x', x.shape);
    const up = g.resize(t, { scale: 2 });
    assert.deepEqual(up.shape, [1, 2, 6, 8]);
    g.output(up, 'nearest');
    g.output(g.resize(t, { scale: 2, mode: 'bilinear' }), 'bilinear');
    g.output(g.resize(t, { size: [5, 3], mode: 'bilinear' }), 'sized');
  }, { x: feed(x) });
  assertClose(out(r, 'nearest'), resize(x, 6, 8, 'nearest'));
  assertClose(out(r, 'bilinear'), resize(x, 6, 8, 'bilinear'));
  assertClose(out(r, 'sized'), resize(x, 5, 3, 'bilinear'));
});
