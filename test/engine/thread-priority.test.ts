// The engine's threads yield to the service's event loop: on Linux the ORT worker thread and the thread pool
// ONNX Runtime starts from it run at LIKENESS_ENGINE_NICE (default 10), while the main thread keeps its own
// priority; 0 turns it off. Read from /proc, the way `top -H` shows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, platform } from 'node:os';
import { GraphBuilder } from '../../src/engine/onnx/graph.js';
import { encodeModel } from '../../src/engine/onnx/serialize.js';
import { OrtWorker, createSession } from '../../src/engine/onnx/session.js';
import { DEFAULT_ENGINE_NICE, engineNice } from '../../src/engine/thread-priority.js';

/** tid → nice of every thread of this process (field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
      out.set(Number(tid), Number(fields[16]));
    } catch {
      // the thread ended while we read
    }
  }
  return out;
}

async function sessionOn(worker: OrtWorker) {
  const g = new GraphBuilder();
  g.output(g.mul(g.input('x', [4]), 2), 'y');
  return createSession(await encodeModel(g.build()), { intraOpThreads: 2, worker });
}

const linux = platform() === 'linux';

test('LIKENESS_ENGINE_NICE: default 10, 0–19 accepted, anything else refused naming the range', () => {
  assert.equal(engineNice(undefined), DEFAULT_ENGINE_NICE);
  assert.equal(engineNice(''), 10);
  assert.equal(engineNice('0'), 0);
  assert.equal(engineNice('19'), 19);
  for (const bad of ['-1', '20', '5.5', 'low']) assert.throws(() => engineNice(bad), /LIKENESS_ENGINE_NICE must be an integer from 0 \(off\) to 19/);
});

test('an engine worker and its ONNX Runtime threads run at nice 10; the main thread is untouched', { skip: !linux && 'nice is per thread only on Linux' }, async () => {
  const mainNice = getPriority(0);
  const before = new Set(threadNices().keys());
  const worker = new OrtWorker();
  const s = await sessionOn(worker);
  try {
    const r = await s.run({ x: { dtype: 'float32', dims: [4], data: Float32Array.from([1, 2, 3, 4]) } });
    assert.deepEqual(Array.from(r['y']!.data as Float32Array), [2, 4, 6, 8]);
    const fresh = [...threadNices()].filter(([tid]) => !before.has(tid));
    const lowered = fresh.filter(([, nice]) => nice === DEFAULT_ENGINE_NICE);
    // The worker thread itself plus at least one pool thread of the 2-thread session.
    assert.ok(lowered.length >= 2, `threads started for the session: ${JSON.stringify(fresh)}`);
    assert.equal(threadNices().get(process.pid), mainNice, 'the event loop keeps its priority');
    assert.equal(getPriority(0), mainNice);
  } finally {
    await s.dispose();
    await worker.terminate();
  }
});

test('LIKENESS_ENGINE_NICE=0 leaves the engine threads at the process priority', { skip: !linux && 'nice is per thread only on Linux' }, async () => {
  const mainNice = getPriority(0);
  const saved = process.env.LIKENESS_ENGINE_NICE;
  process.env.LIKENESS_ENGINE_NICE = '0'; // a worker copies the environment when it starts
  const before = new Set(threadNices().keys());
  const worker = new OrtWorker();
  try {
    const s = await sessionOn(worker);
    const fresh = [...threadNices()].filter(([tid]) => !before.has(tid));
    assert.ok(fresh.length >= 1);
    assert.ok(fresh.every(([, nice]) => nice === mainNice), JSON.stringify(fresh));
    await s.dispose();
  } finally {
    if (saved === undefined) delete process.env.LIKENESS_ENGINE_NICE;
    else process.env.LIKENESS_ENGINE_NICE = saved;
    await worker.terminate();
  }
});
