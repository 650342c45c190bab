// The session layer: runs in a worker thread, errors arrive as EngineErrors, sessions dispose cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { encodeModel } from '../../../src/engine/onnx/serialize.js';
import {
  OrtWorker, availableExecutionProviders, checkExecutionProvider, createSession, type Session,
} from '../../../src/engine/onnx/session.js';
import { EngineError } from '../../../src/engine/errors.js';
import { f32, randn } from '../../helpers/reference-ops.js';

async function doubler(worker?: OrtWorker): Promise<Session> {
  const g = new GraphBuilder();
  g.output(g.mul(g.input('x', ['N']), 2), 'y');
  return createSession(await encodeModel(g.build()), { intraOpThreads: 1, ...(worker ? { worker } : {}) });
}

/** About a second of single-threaded work: a chain of 512×512 matmuls. */
async function slowModel(): Promise<Uint8Array> {
  const g = new GraphBuilder();
  const w = g.param('w', [512, 512], f32(randn([512, 512], 101, 1 / Math.sqrt(512))));
  let h = g.input('x', [512, 512]);
  for (let i = 0; i < 60; i++) h = g.tanh(g.matmul(h, w));
  g.output(h, 'y');
  return encodeModel(g.build());
}
const slowFeed = { x: { dtype: 'float32' as const, dims: [512, 512], data: f32(randn([512, 512], 102)) } };

const isEngineError = (code: string, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof EngineError, `expected an EngineError, got ${String(e)}`);
  assert.equal(e.code, code);
  if (message) assert.match(e.message, message);
  return true;
};

test('runs return outputs and metadata', async () => {
  const s = await doubler();
  assert.deepEqual(s.inputNames, ['x']);
  assert.deepEqual(s.outputs, [{ name: 'y', dtype: 'float32', shape: ['N'] }]);
  const r = await s.run({ x: { dtype: 'float32', dims: [3], data: Float32Array.from([1, 2, 3]) } });
  assert.deepEqual(Array.from(r['y']!.data as Float32Array), [2, 4, 6]);
  assert.deepEqual(r['y']!.dims, [3]);
  await s.dispose();
});

test('a run in the worker does not block the event loop', async () => {
  const s = await createSession(await slowModel(), { intraOpThreads: 1, graphOptimizationLevel: 'disabled' });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const start = performance.now();
  // Runs until the worker has computed for 150 ms, however fast this machine is.
  let runs = 0;
  while (performance.now() - start < 150 && runs < 200) {
    await s.run(slowFeed);
    runs++;
  }
  const elapsed = performance.now() - start;
  clearInterval(timer);
  await s.dispose();
  assert.ok(elapsed >= 150, `${runs} runs took only ${elapsed.toFixed(0)} ms; make the model slower`);
  assert.ok(ticks >= (elapsed / 5) * 0.3, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms run`);
});

test('several sessions share one worker', async () => {
  const worker = new OrtWorker();
  const a = await doubler(worker);
  const b = await doubler(worker);
  const feeds = { x: { dtype: 'float32' as const, dims: [1], data: Float32Array.from([5]) } };
  const [ra, rb] = await Promise.all([a.run(feeds), b.run(feeds)]);
  assert.equal(ra['y']!.data[0], 10);
  assert.equal(rb['y']!.data[0], 10);
  await a.dispose();
  assert.equal((await b.run(feeds))['y']!.data[0], 10);
  await worker.terminate();
});

test('transfer moves the input buffers to the worker', async () => {
  const s = await doubler();
  const data = Float32Array.from([1, 2]);
  const r = await s.run({ x: { dtype: 'float32', dims: [2], data } }, { transfer: true });
  assert.equal(data.byteLength, 0);
  assert.deepEqual(Array.from(r['y']!.data as Float32Array), [2, 4]);
  await s.dispose();
});

test('a bad input is an EngineError and the session keeps working', async () => {
  const s = await doubler();
  await assert.rejects(s.run({ nope: { dtype: 'float32', dims: [1], data: Float32Array.from([1]) } }), isEngineError('ort_run_failed', /nope|input/i));
  await assert.rejects(s.run({ x: { dtype: 'float32', dims: [2], data: Float32Array.from([1]) } }), isEngineError('ort_bad_input'));
  const r = await s.run({ x: { dtype: 'float32', dims: [1], data: Float32Array.from([4]) } });
  assert.equal(r['y']!.data[0], 8);
  await s.dispose();
});

test('a disposed session refuses to run', async () => {
  const s = await doubler();
  await s.dispose();
  await s.dispose();
  await assert.rejects(s.run({ x: { dtype: 'float32', dims: [1], data: Float32Array.from([1]) } }), isEngineError('ort_session_closed'));
});

test('a model ORT refuses is an EngineError naming the cause', async () => {
  await assert.rejects(createSession(Uint8Array.from([1, 2, 3, 4]), { intraOpThreads: 1 }), isEngineError('ort_session_failed', /ONNX Runtime session/));
  await assert.rejects(createSession('/nonexistent/model.onnx', { intraOpThreads: 1 }), isEngineError('ort_session_failed', /nonexistent/));
});

test('cuda is accepted exactly when its libraries are installed, else refused with install instructions', async () => {
  if (availableExecutionProviders().includes('cuda')) {
    assert.doesNotThrow(() => checkExecutionProvider('cuda'));
    return;
  }
  assert.throws(() => checkExecutionProvider('cuda'), isEngineError('ort_ep_unavailable', /ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/));
  await assert.rejects(createSession(Uint8Array.from([0]), { executionProvider: 'tensorrt' }), isEngineError('ort_ep_unavailable', /tensorrt/));
});

test('an AbortSignal rejects at once; the worker finishes the run and stays usable', async () => {
  const worker = new OrtWorker();
  const slow = await createSession(await slowModel(), { intraOpThreads: 1, graphOptimizationLevel: 'disabled', worker });
  const fast = await doubler(worker);
  const already = AbortSignal.abort();
  await assert.rejects(slow.run(slowFeed, { signal: already }), { name: 'AbortError' });
  const controller = new AbortController();
  const running = slow.run(slowFeed, { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  const start = performance.now();
  await assert.rejects(running, { name: 'AbortError' });
  assert.ok(performance.now() - start < 500, 'the abort was not prompt');
  const r = await fast.run({ x: { dtype: 'float32', dims: [1], data: Float32Array.from([3]) } });
  assert.equal(r['y']!.data[0], 6);
  await worker.terminate();
});

test('terminating the worker fails pending runs', async () => {
  const worker = new OrtWorker();
  const slow = await createSession(await slowModel(), { intraOpThreads: 1, graphOptimizationLevel: 'disabled', worker });
  const running = assert.rejects(slow.run(slowFeed), isEngineError('ort_worker_terminated'));
  await worker.terminate();
  await running;
  await assert.rejects(slow.run(slowFeed), isEngineError('ort_worker_terminated'));
});
