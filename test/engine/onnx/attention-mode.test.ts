// GraphBuilder's attention option: 'fused' (com.microsoft.MultiHeadAttention) gives what 'plain'
// (MatMul/Softmax/MatMul) gives, within float32 rounding, also at a length where ORT's CPU kernel
// works through the keys in blocks instead of holding the score matrix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, type AttentionMode } from '../../../src/engine/onnx/graph.js';
import { attention, map, randn, type Nd } from '../../helpers/reference-ops.js';
import { feed, out, runGraph } from './harness.js';

function opTypes(attention: AttentionMode | undefined, fusedAttention?: boolean): string[] {
  const g = new GraphBuilder({ ...(attention ? { attention } : {}), ...(fusedAttention !== undefined ? { fusedAttention } : {}) });
  const q = g.input('q', ['B', 'S', 8]);
  g.output(g.attention(q, q, q, { heads: 2 }), 'y');
  return g.build().nodes.map((n) => n.opType).filter((t) => t !== 'Identity');
}

test("attention option: 'plain' by default, 'fused' emits one MultiHeadAttention; fusedAttention: true still means 'fused'", () => {
  assert.ok(opTypes(undefined).includes('Softmax'));
  assert.ok(!opTypes(undefined).includes('MultiHeadAttention'));
  assert.deepEqual(opTypes('fused'), ['MultiHeadAttention']);
  assert.deepEqual(opTypes(undefined, true), ['MultiHeadAttention']);
  assert.ok(opTypes('plain', true).includes('Softmax'), 'attention wins over fusedAttention');
});

async function both(build: (g: GraphBuilder) => void, feeds: Parameters<typeof runGraph>[1]): Promise<[Float32Array, Float32Array]> {
  const plain = out(await runGraph(build, feeds, { attention: 'plain' }), 'y');
  const fused = out(await runGraph(build, feeds, { attention: 'fused' }), 'y');
  return [plain, fused];
}

/** The largest and the root-mean-square |actual − expected| (expected in float64). */
function errors(actual: Float32Array, expected: Nd): { max: number; rms: number } {
  assert.equal(actual.length, expected.data.length);
  let max = 0;
  let sq = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = Math.abs(actual[i]! - expected.data[i]!);
    max = Math.max(max, e);
    sq += e * e;
  }
  return { max, rms: Math.sqrt(sq / actual.length) };
}

/**
 * Both forms against a float64 reference: each within `atol` of the exact result, and the fused one
 * as accurate as the plain one (its rms error at most 1.1× the plain one's: the two sum in different
 * orders, so neither is bit-exact and their worst elements differ).
 */
function assertAsAccurate(plain: Float32Array, fused: Float32Array, exact: Nd, atol: number): void {
  const p = errors(plain, exact);
  const f = errors(fused, exact);
  const show = (e: { max: number; rms: number }): string => `max ${e.max.toExponential(2)}, rms ${e.rms.toExponential(2)}`;
  const what = `plain ${show(p)}; fused ${show(f)}`;
  assert.ok(p.max <= atol && f.max <= atol, what);
  assert.ok(f.rms <= 1.1 * p.rms + 1e-9, what);
}

test('fused equals plain: single-head self-attention over 4,096 positions (the VAE mid-block form)', async () => {
  const x = randn([1, 4096, 8], 71, 2);
  const [plain, fused] = await both((g) => {
    const t = g.input('x', x.shape);
    g.output(g.attention(t, t, t, { heads: 1 }), 'y');
  }, { x: feed(x) });
  assertAsAccurate(plain, fused, attention(x, x, x, 1), 5e-5); // outputs up to ~6: a few float32 ulps
});

test('fused equals plain: batch 2, 4 heads, cross-attention with other key and value lengths and widths', async () => {
  const q = randn([2, 1500, 32], 72);
  const k = randn([2, 700, 32], 73);
  const v = randn([2, 700, 16], 74);
  const [plain, fused] = await both((g) => {
    g.output(g.attention(g.input('q', ['B', 'S', 32]), g.input('k', ['B', 'T', 32]), g.input('v', ['B', 'T', 16]), { heads: 4, scale: 0.3 }), 'y');
  }, { q: feed(q), k: feed(k), v: feed(v) });
  assertAsAccurate(plain, fused, attention(map(q, (a) => a * 0.3 * Math.sqrt(8)), k, v, 4), 2e-5);
});

test('fused takes a 2-D additive mask (a causal one, as CLIP has) as plain does', async () => {
  const q = randn([2, 6, 8], 75);
  const causal = { shape: [6, 6], data: Float64Array.from({ length: 36 }, (_, i) => (i % 6 <= Math.floor(i / 6) ? 0 : -1e9)) };
  const [plain, fused] = await both((g) => {
    const t = g.input('q', ['B', 6, 8]);
    g.output(g.attention(t, t, t, { heads: 2, mask: g.input('mask', [6, 6]) }), 'y');
  }, { q: feed(q), mask: feed(causal) });
  assertAsAccurate(plain, fused, attention(q, q, q, 2, { shape: [1, 1, 6, 6], data: causal.data }), 1e-6);
});
