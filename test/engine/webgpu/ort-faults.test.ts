// Minimal single-op repros of what is wrong on the WebGPU path, and proof that the engine's workaround
// holds (docs/architecture.md, "Execution providers"). A fault test that starts failing means ONNX
// Runtime or the driver fixed it: then revisit graphChoicesFor (onnx/provider.ts) and sinCos.
import assert from 'node:assert/strict';
import { GraphBuilder, type AttentionMode } from '../../../src/engine/onnx/graph.js';
import { graphChoicesFor } from '../../../src/engine/onnx/provider.js';
import { encodeModel } from '../../../src/engine/onnx/serialize.js';
import { createSession } from '../../../src/engine/onnx/session.js';
import type { ExecutionProvider } from '../../../src/engine/onnx/session-protocol.js';
import { randn } from '../../helpers/reference-ops.js';
import { sinCosError } from './sinusoids-lib.js';
import { webgpuReady, webgpuTest } from './webgpu-env.js';

/** One attention op (q = k = v = x, [1, seq, 64], 4 heads) on a provider. */
async function attention(ep: ExecutionProvider, mode: AttentionMode, seq: number): Promise<Float32Array> {
  const g = new GraphBuilder({ attention: mode });
  const x = g.input('x', [1, seq, 64]);
  g.output(g.attention(x, x, x, { heads: 4 }), 'y');
  const session = await createSession(await encodeModel(g.build()), { executionProvider: ep, intraOpThreads: 1 });
  try {
    const input = randn([1, seq, 64], 7, 1);
    const out = await session.run({ x: { dtype: 'float32', dims: [1, seq, 64], data: Float32Array.from(input.data) } });
    return out.y!.data as Float32Array;
  } finally {
    await session.dispose();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

webgpuTest('ORT fault: WebGPU com.microsoft.MultiHeadAttention is wrong at sequence 64 (fine at 16); the plain form the engine uses is right', async () => {
  const cpu16 = await attention('cpu', 'plain', 16);
  const cpu64 = await attention('cpu', 'plain', 64);
  const fused16 = maxDiff(await attention('webgpu', 'fused', 16), cpu16);
  const fused64 = maxDiff(await attention('webgpu', 'fused', 64), cpu64);
  const plain64 = maxDiff(await attention('webgpu', 'plain', 64), cpu64);
  assert.ok(fused16 < 1e-5, `MultiHeadAttention at 16: ${fused16}`);
  assert.ok(fused64 > 1e-3, `MultiHeadAttention at 64 now matches the CPU (${fused64}): ORT fixed it, reconsider 'fused' for webgpu`);
  assert.ok(plain64 < 1e-5, `MatMul/Softmax/MatMul at 64: ${plain64}`);
  assert.equal(graphChoicesFor('webgpu').attention, 'plain');
});

webgpuTest('driver fault: WebGPU Sin/Cos are approximations; sinCos (Mul/Add/Floor only) is within 4e-7 on the GPU too', async () => {
  const info = await webgpuReady();
  const native = await sinCosError('webgpu', 'native');
  const exact = await sinCosError('webgpu', 'exact');
  if (!(info instanceof Error) && /swiftshader/i.test(info.adapter)) {
    assert.ok(native.sin > 1e-5, `SwiftShader's Sin is now accurate (${native.sin}): the workaround may be dropped`);
  }
  assert.ok(exact.sin <= 4e-7 && exact.cos <= 4e-7, `sinCos on webgpu: ${JSON.stringify(exact)} (native Sin/Cos: ${JSON.stringify(native)})`);
});

webgpuTest('forceCpuNodes: the named nodes of a WebGPU session run on the CPU (native Sin/Cos become exact there)', async () => {
  const args = Float32Array.from({ length: 256 }, (_, i) => Math.fround(i * 3.9));
  const g = new GraphBuilder();
  const a = g.input('a', [args.length]);
  g.output(g.sin(g.mul(a, 1)), 'sin');
  const model = g.build();
  const sinNodes = model.nodes.filter((n) => n.opType === 'Sin').map((n) => n.name);
  assert.equal(sinNodes.length, 1);
  const bytes = await encodeModel(model);
  const error = async (forceCpuNodes: string[]): Promise<number> => {
    const s = await createSession(bytes, { executionProvider: 'webgpu', forceCpuNodes });
    try {
      const got = (await s.run({ a: { dtype: 'float32', dims: [args.length], data: args } })).sin!.data as Float32Array;
      return Math.max(...Array.from(got, (v, i) => Math.abs(v - Math.sin(args[i]!))));
    } finally {
      await s.dispose();
    }
  };
  const onCpu = await error(sinNodes);
  assert.ok(onCpu <= 1e-7, `Sin forced onto the CPU: ${onCpu}`);
  const info = await webgpuReady();
  if (!(info instanceof Error) && /swiftshader/i.test(info.adapter)) assert.ok((await error([])) > 1e-5, 'Sin on SwiftShader is approximate');
});

/** One 3×3 Conv (padding 1, no bias) of a [1, cin, 6, 10] input to 8 channels: max |webgpu − cpu|. */
async function conv3x3Error(cin: number): Promise<number> {
  const g = new GraphBuilder();
  const x = g.input('x', [1, cin, 6, 10]);
  const w = g.input('w', [8, cin, 3, 3]);
  g.output(g.conv2d(x, w, undefined, { padding: 1, stride: 1 }), 'y');
  const bytes = await encodeModel(g.build());
  const feeds = {
    x: { dtype: 'float32' as const, dims: [1, cin, 6, 10], data: Float32Array.from(randn([1, cin, 6, 10], 3, 1).data) },
    w: { dtype: 'float32' as const, dims: [8, cin, 3, 3], data: Float32Array.from(randn([8, cin, 3, 3], 5, 1).data) },
  };
  const outs: Float32Array[] = [];
  for (const ep of ['cpu', 'webgpu'] as const) {
    const s = await createSession(bytes, { executionProvider: ep, intraOpThreads: 1 });
    try {
      outs.push((await s.run(feeds)).y!.data as Float32Array);
    } finally {
      await s.dispose();
    }
  }
  return maxDiff(outs[0]!, outs[1]!);
}

webgpuTest('ORT fault: WebGPU 3×3 Conv is wrong when the input channels are not a multiple of 4 (6: off by ~10; 4 and 8 match)', async () => {
  const six = await conv3x3Error(6);
  assert.ok(six > 1e-2, `3×3 Conv with 6 input channels now matches the CPU (${six}): ORT fixed it`);
  assert.ok((await conv3x3Error(4)) < 1e-4 && (await conv3x3Error(8)) < 1e-4, 'Conv with 4 / 8 input channels');
});
