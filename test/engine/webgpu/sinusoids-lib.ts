// Shared by the CPU and WebGPU sinusoid tests: the timestep / time-id arguments SDXL feeds, and the
// largest error of the graph's sin/cos against float64 sin/cos of the same float32 arguments.
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { encodeModel } from '../../../src/engine/onnx/serialize.js';
import { createSession } from '../../../src/engine/onnx/session.js';
import type { ExecutionProvider } from '../../../src/engine/onnx/session-protocol.js';
import { sinCos, timestepFrequencies } from '../../../src/engine/nets/sdxl-blocks.js';

/** Float32 arguments t·f as torch forms them: timesteps 0…999 and pixel sizes up to 4096 times every frequency. */
export function sinusoidArguments(): Float32Array {
  const freqs = timestepFrequencies(256, 0);
  const values = [...Array.from({ length: 100 }, (_, i) => i * 10 + 1), 999, 512, 1024, 1536, 2048, 4096, 0, 37];
  const out = new Float32Array(values.length * freqs.length);
  values.forEach((v, i) => freqs.forEach((f, j) => { out[i * freqs.length + j] = Math.fround(v * f); }));
  return out;
}

/** Max |graph − exact| for sin and cos, with `form` 'exact' (sinCos) or 'native' (the Sin/Cos ops). */
export async function sinCosError(ep: ExecutionProvider, form: 'exact' | 'native', args = sinusoidArguments()): Promise<{ sin: number; cos: number }> {
  const g = new GraphBuilder();
  const a = g.input('a', [args.length]);
  const [s, c] = form === 'exact' ? sinCos(g, a) : [g.sin(a), g.cos(a)];
  g.output(s, 'sin');
  g.output(c, 'cos');
  const session = await createSession(await encodeModel(g.build()), { executionProvider: ep, intraOpThreads: 1 });
  try {
    const out = await session.run({ a: { dtype: 'float32', dims: [args.length], data: args } });
    const sin = out.sin!.data as Float32Array;
    const cos = out.cos!.data as Float32Array;
    let es = 0;
    let ec = 0;
    for (let i = 0; i < args.length; i++) {
      es = Math.max(es, Math.abs(sin[i]! - Math.sin(args[i]!)));
      ec = Math.max(ec, Math.abs(cos[i]! - Math.cos(args[i]!)));
    }
    return { sin: es, cos: ec };
  } finally {
    await session.dispose();
  }
}
