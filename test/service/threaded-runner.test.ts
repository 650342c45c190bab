// ThreadedRunner through a real service: every status path (success, a failure in preprocess,
// pexit 1 from run and postprocess, Kill → task_cancel, the thread dying mid-task and the next task
// getting a fresh thread), and the point of it all: while the runner burns CPU synchronously in its
// thread, Task/Detail keeps answering.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceTool } from '../../src/service/context.js';
import type { ToolRunner } from '../../src/service/runner.js';
import { ThreadedRunner } from '../../src/service/threaded-runner.js';
import { createRunner, type TestRunnerOptions } from '../helpers/threaded-test-runner.js';
import { TINY_PNG, scriptedTool, startTestService, waitForTerminal, type TestService } from '../helpers/service.js';

const RUN = '/v1/Run/test/scripted';
const MODES = ['ok', 'fail-pre', 'fail-run', 'fail-post', 'spin', 'slow', 'crash'];
const options: TestRunnerOptions = { spinMs: 1000, stepMs: 50 };
const FACE = 'http://images.test/face.png';

function tool(runner: ToolRunner): ServiceTool {
  return {
    ...scriptedTool(runner),
    validate(body) {
      const mode = String(body.mode ?? 'ok');
      const steps = Number(body.steps ?? 3);
      if (!MODES.includes(mode)) return { ok: false, errors: [{ code: 0, message: 'Request parameter [mode] is invalid' }] };
      return { ok: true, params: { mode, steps, inputImageUrl: typeof body.inputImageUrl === 'string' ? body.inputImageUrl : '' } };
    },
  };
}

const threaded = new ThreadedRunner(new URL('../helpers/threaded-test-runner.ts', import.meta.url), options);
let s: TestService;

before(async () => {
  s = await startTestService({ tools: [tool(threaded)] });
  s.net.images.set(FACE, TINY_PNG);
});

after(async () => {
  await s?.close();
  await threaded.dispose();
});

async function run(body: Record<string, unknown>, service = s): Promise<string> {
  const { json } = await service.post(RUN, body);
  assert.equal(json.result, true, JSON.stringify(json));
  return json.taskid as string;
}

async function detail(taskid: string, service = s): Promise<Record<string, unknown>> {
  return ((await service.post('/v1/Task/Detail', { taskid })).json.tasklist as Record<string, unknown>[])[0]!;
}

const names = (task: Record<string, unknown>): string[] => (task.outputs as { name: string }[]).map((o) => o.name);

test('a task runs in the thread: its input bytes arrive, logs and outputs come back → task_postprocess_end', async () => {
  const task = await waitForTerminal(s, await run({ mode: 'ok', inputImageUrl: FACE }));
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  assert.equal(task.pexit, '0');
  assert.deepEqual(names(task), ['0.png', '1.png']);
  const out = String(task.debugoutput);
  const project = (await s.service.ctx.store.findProject('default'))!;
  assert.match(out, new RegExp(`^preprocess in thread \\d+ for project ${project.id}$`, 'm'), 'the task\'s project crosses into the thread');
  assert.match(out, new RegExp(`^input inputImage: ${TINY_PNG.length} bytes image/png$`, 'm'));
  assert.match(out, /^wrote 2 outputs$/m);
  const url = (task.outputs as { url: string }[])[0]!.url;
  assert.deepEqual(Buffer.from(await (await fetch(url)).arrayBuffer()), TINY_PNG);
});

test('progress from the thread reaches the task', async () => {
  const id = await run({ mode: 'slow', steps: 6 });
  const steps = new Set<string>();
  for (let t = await detail(id); !['task_postprocess_end', 'task_error', 'task_cancel'].includes(String(t.status)); t = await detail(id)) {
    const p = t.progress as { stepCurrent?: string; stepTotal?: string } | null;
    if (p?.stepCurrent) steps.add(`${p.stepCurrent}/${p.stepTotal}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(steps.size >= 2 && [...steps].every((x) => /^[1-6]\/6$/.test(x)), [...steps].join(' '));
  assert.equal((await waitForTerminal(s, id)).status, 'task_postprocess_end');
});

test('a TaskInputError in preprocess keeps its message → pexit 1', async () => {
  const task = await waitForTerminal(s, await run({ mode: 'fail-pre' }));
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.equal(task.debugerror, 'no face detected in inputImageUrl: use a photo with one clearly visible face');
  assert.deepEqual(task.outputs, []);
});

test('a throw in run → pexit 1 with its message, the output staged before it is dropped', async () => {
  const task = await waitForTerminal(s, await run({ mode: 'fail-run' }));
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.equal(task.debugerror, 'the UNet ran out of memory at step 2');
  assert.deepEqual(task.outputs, []);
});

test('a throw in postprocess → pexit 1 with its message', async () => {
  const task = await waitForTerminal(s, await run({ mode: 'fail-post' }));
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.equal(task.debugerror, 'the PNG encoder failed');
});

test('Kill mid-run reaches the thread → task_cancel at the next step, no outputs', async () => {
  const id = await run({ mode: 'slow', steps: 100 });
  for (const end = Date.now() + 10_000; ;) {
    const t = await detail(id);
    if (t.status === 'task_output' && Number((t.progress as { stepCurrent?: string } | null)?.stepCurrent ?? 0) >= 2) break;
    assert.ok(Date.now() < end, `still ${String(t.status)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const started = Date.now();
  const task = ((await s.post('/v1/Task/Kill', { taskid: id })).json.tasklist as Record<string, unknown>[])[0]!;
  assert.equal(task.status, 'task_cancel');
  assert.deepEqual(task.outputs, []);
  assert.ok(Date.now() - started < 1000, `Kill took ${Date.now() - started} ms`);
});

test('the thread dying mid-task fails that task clearly (pexit 1); the next task gets a fresh thread', async () => {
  const task = await waitForTerminal(s, await run({ mode: 'crash' }));
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(String(task.debugerror), /^the engine thread exited \(code 3\)/);
  const next = await waitForTerminal(s, await run({ mode: 'ok' }));
  assert.equal(next.status, 'task_postprocess_end', String(next.debugerror));
  assert.deepEqual(names(next), ['0.png', '1.png']);
});

/**
 * Run and Task/Detail latencies from the Run of a "spin" task (3 × 1 s of synchronous CPU) to its end. A poll's
 * latency runs from when it was due (20 ms after the previous answer) to its answer, so a stalled event loop
 * counts whether it delays the poll's timer or the answer (the client shares the server's process here).
 */
async function latenciesDuringSpin(service: TestService): Promise<{ task: Record<string, unknown>; latencies: number[]; whileRunning: number }> {
  let due = performance.now();
  const id = await run({ mode: 'spin', steps: 3 }, service);
  const latencies: number[] = [performance.now() - due]; // the Run itself: the task may start before it answers
  let whileRunning = 0;
  due = performance.now();
  for (const end = Date.now() + 20_000; Date.now() < end;) {
    const t = await detail(id, service);
    latencies.push(performance.now() - due);
    if (['task_start', 'task_output'].includes(String(t.status))) whileRunning++;
    if (['task_postprocess_end', 'task_error', 'task_cancel'].includes(String(t.status))) return { task: t, latencies, whileRunning };
    due = performance.now() + 20;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the spin task did not end');
}

test('while the runner burns CPU synchronously in its thread, Task/Detail keeps answering fast', async () => {
  const { task, latencies, whileRunning } = await latenciesDuringSpin(s);
  assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
  const max = Math.max(...latencies);
  const sorted = [...latencies].sort((a, b) => a - b);
  console.log(`threaded: ${latencies.length} Task/Detail (${whileRunning} while running) during ~3 s of engine CPU; ` +
    `median ${sorted[sorted.length >> 1]!.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
  assert.ok(whileRunning >= 20, `only ${whileRunning} answers while the task ran`);
  assert.ok(max < 300, `max latency ${max.toFixed(0)} ms`);
});

test('control: the same runner on the main thread stalls the API (Run or Task/Detail) for the length of a step', async () => {
  const inThread = await startTestService({ tools: [tool(createRunner(options))] });
  try {
    const { task, latencies, whileRunning } = await latenciesDuringSpin(inThread);
    assert.equal(task.status, 'task_postprocess_end', String(task.debugerror));
    const max = Math.max(...latencies);
    console.log(`in-thread: ${latencies.length} Task/Detail (${whileRunning} while running); max ${max.toFixed(1)} ms`);
    assert.ok(max > 500, `max latency ${max.toFixed(0)} ms`);
  } finally {
    await inThread.close();
  }
});

test('a queued task is prefetched in the thread while another runs (the "prefetch" call crosses like the phases)', async () => {
  const first = await run({ mode: 'slow', steps: 6 });
  const second = await run({ mode: 'ok', steps: 2 });
  assert.equal((await waitForTerminal(s, first)).pexit, '0');
  const task = await waitForTerminal(s, second);
  assert.equal(task.pexit, '0', String(task.debugerror));
  assert.match(String(task.debugoutput), /^prefetched in thread \d+$/m);
});

test('a prefetch in the thread is aborted by its signal: the call rejects as an abort', async () => {
  const stop = new AbortController();
  const pending = threaded.prefetch({ mode: 'prefetch-hang' }, stop.signal);
  setTimeout(() => stop.abort(), 50);
  await assert.rejects(pending, (err: Error) => err.name === 'AbortError');
});

test('dispose() asks the runner to dispose, then the thread ends by itself; the next call starts a fresh one', async () => {
  const r = new ThreadedRunner(new URL('../helpers/threaded-test-runner.ts', import.meta.url), options);
  const lines: string[] = [];
  const ctx = {
    taskId: 1, uuid: 'u', projectId: 1, params: { mode: 'ok', steps: 1 }, inputs: {}, signal: new AbortController().signal,
    log: (l: string) => lines.push(l), progress: () => undefined, writeOutput: async () => undefined,
  };
  await r.preprocess(ctx);
  const started = Date.now();
  await r.dispose(5_000);
  assert.ok(Date.now() - started < 2_000, 'the thread ended by itself, not at the termination deadline');
  await assert.rejects(r.run(ctx), /not preprocessed in this thread/);
  await r.dispose();
  assert.equal(lines.length, 1);
});

test('a module without createRunner fails the call with a clear message', async () => {
  const r = new ThreadedRunner(new URL('./threaded-runner.test.ts', import.meta.url).href.replace('threaded-runner.test', 'no-such-module'), {});
  const ctx = {
    taskId: 1, uuid: 'u', projectId: 1, params: {}, inputs: {}, signal: new AbortController().signal,
    log: () => undefined, progress: () => undefined, writeOutput: async () => undefined,
  };
  await assert.rejects(r.preprocess(ctx), /no-such-module/);
  await r.dispose();
});
