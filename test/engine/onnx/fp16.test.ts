// The same graph built in float32 and float16: close results; norms and softmax stay float32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, type BuilderOptions, type Tensor } from '../../../src/engine/onnx/graph.js';
import { halfToFloat, toFloat16 } from '../../../src/engine/formats/safetensors.js';
import { assertClose, f32, randn } from '../../helpers/reference-ops.js';
import { out, runGraph } from './harness.js';

const x = randn([1, 8, 6, 6], 81);
const weights = {
  conv: randn([8, 8, 3, 3], 82, 0.2),
  gnw: randn([8], 83, 0.5),
  gnb: randn([8], 84, 0.5),
  q: randn([8, 8], 85, 0.4),
  lnw: randn([8], 86),
  ff: randn([8, 8], 87, 0.4),
};

/** A small UNet-ish block using every float16-sensitive op. */
function block(g: GraphBuilder): void {
  const p = (name: keyof typeof weights): Tensor => g.param(name, weights[name].shape, f32(weights[name]));
  const input = g.input('x', x.shape);
  let h = g.conv2d(input, p('conv'), undefined, { padding: 1 }); // [1, 8, 6, 6]
  h = g.silu(g.groupNorm(h, p('gnw'), p('gnb'), { groups: 4 }));
  const tokens = g.transpose(g.reshape(h, [1, 8, 36]), [0, 2, 1]); // [1, 36, 8]
  const q = g.linear(tokens, p('q'));
  const attn = g.attention(q, q, q, { heads: 2 });
  const ff = g.gelu(g.linear(g.layerNorm(g.add(tokens, attn), p('lnw')), p('ff')));
  const back = g.reshape(g.transpose(ff, [0, 2, 1]), [1, 8, 6, 6]);
  g.output(g.resize(back, { scale: 2 }), 'y');
  g.output(g.softmax(g.reshape(back, [1, -1])), 'p');
}

const feed32 = { x: { dtype: 'float32' as const, dims: x.shape, data: f32(x) } };

async function run(options: BuilderOptions, feeds: Parameters<typeof runGraph>[1]) {
  return runGraph(block, feeds, { ...options, optimization: 'all' });
}

test('a float16 graph computes what the float32 graph does, within half precision', async () => {
  const ref = await run({ dtype: 'float32' }, feed32);
  const half = await run({ dtype: 'float16', keepIoFloat32: true }, feed32);
  assertClose(out(half, 'y'), out(ref, 'y'), { atol: 2e-2, rtol: 2e-2 }, 'y');
  assertClose(out(half, 'p'), out(ref, 'p'), { atol: 1e-4, rtol: 2e-2 }, 'p');
});

test('without keepIoFloat32, float16 inputs and outputs are Uint16Array bits', async () => {
  const ref = await run({ dtype: 'float32' }, feed32);
  const half = await run({ dtype: 'float16' }, { x: { dtype: 'float16', dims: x.shape, data: toFloat16(f32(x)) } });
  const y = half['y']!;
  assert.equal(y.dtype, 'float16');
  assert.ok(y.data instanceof Uint16Array);
  assertClose(Array.from(y.data, halfToFloat), out(ref, 'y'), { atol: 2e-2, rtol: 2e-2 });
});

test('float16 graphs store weights as float16 but keep norm weights and norm/softmax math in float32', () => {
  const g = new GraphBuilder({ dtype: 'float16' });
  block(g);
  const model = g.build();
  const init = new Map(model.initializers.map((i) => [i.name, i]));
  assert.equal(init.get('conv')?.dtype, 'float16');
  assert.equal(init.get('q::T')?.dtype, 'float16');
  const gammas = model.initializers.filter((i) => i.name.startsWith('gnw') || i.name.startsWith('lnw'));
  assert.ok(gammas.length >= 2);
  for (const i of gammas) assert.equal(i.dtype, 'float32', i.name);
  // Every InstanceNormalization, LayerNormalization, Softmax and Resize reads a Cast output.
  const producer = new Map(model.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  for (const n of model.nodes.filter((n) => ['LayerNormalization', 'Softmax', 'Resize'].includes(n.opType))) {
    assert.equal(producer.get(n.inputs[0]!)?.opType, 'Cast', `${n.opType} ${n.name} input`);
  }
  const inorm = model.nodes.find((n) => n.opType === 'InstanceNormalization')!;
  const reshape = producer.get(inorm.inputs[0]!)!;
  assert.equal(producer.get(reshape.inputs[0]!)?.opType, 'Cast');
});

test('float16 weights load lazily and round to nearest even', async () => {
  const g = new GraphBuilder({ dtype: 'float16' });
  const w = g.param('w', [3], () => Float32Array.from([1, 1 + 2 ** -11, 65520]));
  g.output(g.add(g.input('x', [3]), w), 'y');
  const [init] = g.build().initializers;
  assert.deepEqual(Array.from(await init!.load() as Uint16Array), [0x3c00, 0x3c00, 0x7c00]);
});
