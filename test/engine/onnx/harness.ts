// Builds a tiny graph, runs it on the ORT CPU EP through the session layer, returns its outputs.
import { GraphBuilder, type BuilderOptions } from '../../../src/engine/onnx/graph.js';
import { encodeModel } from '../../../src/engine/onnx/serialize.js';
import { createSession } from '../../../src/engine/onnx/session.js';
import type { HostTensor } from '../../../src/engine/onnx/dtype.js';
import { f32, type Nd } from '../../helpers/reference-ops.js';

export type Outputs = Record<string, HostTensor>;

export async function runGraph(
  build: (g: GraphBuilder) => void,
  feeds: Record<string, HostTensor>,
  options: BuilderOptions & { optimization?: 'disabled' | 'all' } = {},
): Promise<Outputs> {
  const g = new GraphBuilder(options);
  build(g);
  const session = await createSession(await encodeModel(g.build()), {
    intraOpThreads: 1,
    interOpThreads: 1,
    graphOptimizationLevel: options.optimization ?? 'all',
  });
  try {
    return await session.run(feeds);
  } finally {
    await session.dispose();
  }
}

/** A float32 feed from a reference array. */
export function feed(a: Nd): HostTensor<'float32'> {
  return { dtype: 'float32', dims: a.shape, data: f32(a) };
}

/** The float32 data of output `name`. */
export function out(outputs: Outputs, name: string): Float32Array {
  const t = outputs[name];
  if (!t) throw new Error(`no output ${name}`);
  if (t.dtype !== 'float32') throw new Error(`output ${name} is ${t.dtype}`);
  return t.data as Float32Array;
}
