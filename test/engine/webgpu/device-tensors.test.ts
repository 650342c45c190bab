// Data stays on the device: a session created with outputsOnDevice hands back DeviceTensor handles
// (onnxruntime-node 'gpu-buffer' outputs) that feed the next run — of the same session or another one in
// the same worker — without a copy; read() brings one back through a session with CPU outputs (getData()
// on a gpu-buffer tensor would abort the process). copiedBytes counts what crossed.
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { encodeModel } from '../../../src/engine/onnx/serialize.js';
import { OrtWorker, copiedBytes, createSession, resetCopiedBytes, type DeviceTensor } from '../../../src/engine/onnx/session.js';
import { EngineError } from '../../../src/engine/errors.js';
import { webgpuTest } from './webgpu-env.js';

const isEngineError = (code: string, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof EngineError, `expected an EngineError, got ${String(e)}`);
  assert.equal(e.code, code);
  if (message) assert.match(e.message, message);
  return true;
};

/** y = x·W with W = 2·I (8×8), so n chained runs multiply by 2ⁿ. */
async function doublerModel(): Promise<Uint8Array> {
  const g = new GraphBuilder();
  const x = g.input('x', [1, 8]);
  const w = new Float32Array(64);
  for (let i = 0; i < 8; i++) w[i * 9] = 2;
  g.output(g.matmul(x, g.constant(w, { shape: [8, 8] })), 'y');
  return encodeModel(g.build());
}

webgpuTest('outputs kept on the device chain through three runs and two sessions; only the feed and the read-back cross', async () => {
  const worker = new OrtWorker();
  try {
    const model = await doublerModel();
    const a = await createSession(model, { executionProvider: 'webgpu', outputsOnDevice: true, worker });
    const b = await createSession(model, { executionProvider: 'webgpu', outputsOnDevice: ['y'], worker });
    resetCopiedBytes();
    const x = Float32Array.from({ length: 8 }, (_, i) => i - 3);
    const y1 = (await a.runOnDevice({ x: { dtype: 'float32', dims: [1, 8], data: x } })).y as DeviceTensor;
    const y2 = (await a.runOnDevice({ x: y1 })).y as DeviceTensor;
    const y3 = (await b.runOnDevice({ x: y2 })).y as DeviceTensor;
    assert.deepEqual([y3.dtype, [...y3.dims], y3.bytes], ['float32', [1, 8], 32]);
    assert.deepEqual(copiedBytes, { toDevice: 32, fromDevice: 0 }, 'nothing came back between runs');
    const host = await y3.read();
    assert.deepEqual([...(host.data as Float32Array)], [...x].map((v) => v * 8));
    assert.deepEqual(copiedBytes, { toDevice: 32, fromDevice: 32 });
    await assert.rejects(a.run({ x: y3 }), isEngineError('ort_bad_input', /runOnDevice/));
    for (const t of [y1, y2, y3]) await t.free();
    await assert.rejects(b.runOnDevice({ x: y1 }), isEngineError('ort_tensor_freed'));
  } finally {
    await worker.terminate();
  }
});

webgpuTest('outputsOnDevice is refused on the CPU provider, naming webgpu', async () => {
  await assert.rejects(createSession(await doublerModel(), { executionProvider: 'cpu', outputsOnDevice: true }), isEngineError('bad_request', /webgpu/));
});
