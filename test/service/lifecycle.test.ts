// Every task reaches exactly one terminal state, through the statuses Wiro documents.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestService, waitForTerminal, TINY_PNG, type TestService } from '../helpers/service.js';

let s: TestService;
before(async () => {
  s = await startTestService();
  s.net.images.set('https://images.example/face.png', TINY_PNG);
});
after(async () => s.close());

async function run(body: Record<string, unknown>): Promise<string> {
  const { json } = await s.post('/v1/Run/test/scripted', body);
  assert.equal(json.result, true, JSON.stringify(json));
  return json.taskid as string;
}

test('a successful run ends in task_postprocess_end with pexit "0", its outputs and every time stamped', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', steps: 3 });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '0');
  assert.equal(task.debugerror, '');
  const outputs = task.outputs as Record<string, string>[];
  assert.deepEqual(outputs.map((o) => o.name), ['0.png', '1.png']);
  for (const f of ['createtime', 'accepttime', 'preprocessstarttime', 'preprocessendtime', 'assigntime', 'starttime', 'endtime', 'postprocessstarttime', 'postprocessendtime']) {
    assert.match(task[f] as string, /^\d{10}$/, f);
  }
  assert.equal(task.canceltime, '0');
  assert.match(task.elapsedseconds as string, /^\d+\.\d{4}$/);
  assert.equal(task.totalcost, (Number(task.elapsedseconds) * 0.000585).toFixed(12));
  const png = await fetch(outputs[0]!.url!);
  assert.equal(png.status, 200);
  assert.equal(png.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await png.arrayBuffer()), TINY_PNG);
});

test('a failure before the model runs ends as Wiro ends one: task_postprocess_end, pexit "1", the reason in debugerror, no cost', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', mode: 'fail-pre' });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(task.debugerror as string, /no face detected in inputImageUrl/);
  assert.equal(task.totalcost, '0');
  assert.deepEqual(task.outputs, []);
});

test('a failure shows the same on Task/List and in the callback: task_postprocess_end, pexit "1", the reason', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', mode: 'fail-pre', callbackUrl: 'https://hooks.example/done' });
  await waitForTerminal(s, id);
  const listed = ((await s.post('/v1/Task/List', {})).json.tasklist as Record<string, unknown>[]).find((t) => t.id === id)!;
  assert.deepEqual([listed.status, listed.pexit], ['task_postprocess_end', '1']);
  assert.match(String(listed.debugerror), /no face detected/);
  for (let i = 0; i < 100 && !s.net.callbacks.some((c) => c.payload.id === id); i++) await new Promise((r) => setTimeout(r, 10));
  const cb = s.net.callbacks.find((c) => c.payload.id === id)!;
  assert.deepEqual([cb.payload.status, cb.payload.pexit, cb.payload.totalcost], ['task_postprocess_end', '1', '0']);
  assert.match(String(cb.payload.debugerror), /no face detected/);
});

test('a URL input that cannot be fetched fails the task in preprocess, naming the input', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/missing.png' });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(task.debugerror as string, /^inputImageUrl .*404/);
});

test('a bare file name as inputImageUrl fails the task with advice, not a crash', async () => {
  const id = await run({ inputImageUrl: 'input-portrait-2.jpg' });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(task.debugerror as string, /not an http\(s\) URL/);
});

test('a failure while running ends in task_postprocess_end with pexit "1", debugerror and no outputs', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', mode: 'fail-run', steps: 5 });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.pexit, '1');
  assert.match(task.debugerror as string, /ran out of memory at step 2/);
  assert.deepEqual(task.outputs, []);
  assert.equal(task.totalcost, '0');
});

test('Cancel takes a queued task to task_cancel; a running or finished one is not cancellable', async () => {
  const blocker = await run({ inputImageUrl: 'https://images.example/face.png', mode: 'gate' });
  const queued = await run({ inputImageUrl: 'https://images.example/face.png' });
  const { json } = await s.post('/v1/Task/Cancel', { taskid: queued });
  assert.equal(json.result, true);
  const cancelled = (json.tasklist as Record<string, unknown>[])[0]!;
  assert.equal(cancelled.status, 'task_cancel');
  assert.match(cancelled.canceltime as string, /^\d{10}$/);
  assert.equal(cancelled.totalcost, '0.000000000000');

  // the blocker is running: Cancel refuses it with Wiro's wording
  for (;;) {
    const d = await s.post('/v1/Task/Detail', { taskid: blocker });
    if ((d.json.tasklist as Record<string, string>[])[0]!.status === 'task_start') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const refused = await s.post('/v1/Task/Cancel', { taskid: blocker });
  assert.deepEqual(refused.json, { result: false, errors: [{ code: 1, message: 'Task is not in a cancellable state.' }] });
  s.runner.release();
  await waitForTerminal(s, blocker);
  const again = await s.post('/v1/Task/Cancel', { taskid: queued });
  assert.equal(again.json.result, false);
});

test('Kill stops a running task within a step: task_cancel, partial outputs discarded', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', mode: 'slow', steps: 50 });
  for (;;) {
    const d = await s.post('/v1/Task/Detail', { taskid: id });
    if ((d.json.tasklist as Record<string, string>[])[0]!.status === 'task_output') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const detail = await s.post('/v1/Task/Detail', { taskid: id });
  const token = (detail.json.tasklist as Record<string, string>[])[0]!.socketaccesstoken;
  const started = Date.now();
  const { json } = await s.post('/v1/Task/Kill', { socketaccesstoken: token });
  assert.equal(json.result, true);
  const task = (json.tasklist as Record<string, unknown>[])[0]!;
  assert.equal(task.status, 'task_cancel');
  assert.ok(Date.now() - started < 1000, 'killed within about one step');
  assert.deepEqual(task.outputs, []);
});

test('Kill of a finished task says why it cannot', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png' });
  await waitForTerminal(s, id);
  const { json } = await s.post('/v1/Task/Kill', { taskid: id });
  assert.equal(json.result, false);
  assert.match((json.errors as { message: string }[])[0]!.message, /^Task could not be killed: it has already ended/);
});

test('callbackUrl receives the final task object on the terminal state', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', callbackUrl: 'https://hooks.example/done' });
  await waitForTerminal(s, id);
  await s.service.ctx.background.drain();
  const delivered = s.net.callbacks.find((c) => c.payload.id === id);
  assert.ok(delivered);
  assert.equal(delivered.url, 'https://hooks.example/done');
  assert.equal(delivered.payload.status, 'task_postprocess_end');
  assert.equal((delivered.payload.outputs as unknown[]).length, 2);
});

test('a callbackUrl that is not a URL is ignored with a note, and the task still runs', async () => {
  const id = await run({ inputImageUrl: 'https://images.example/face.png', callbackUrl: 'You can provide a callback URL; Wiro will send a POST request to it when the task is completed.' });
  const task = await waitForTerminal(s, id);
  assert.equal(task.status, 'task_postprocess_end');
  assert.equal(task.callbackurl, '');
  assert.match(task.debugoutput as string, /callbackUrl ignored/);
});

test('outputs staged in postprocess are published; a postprocess failure ends with pexit "1" and no outputs', async () => {
  const { scriptedTool } = await import('../helpers/service.js');
  const encodeLater = (fail: boolean) =>
    scriptedTool({
      async run() {},
      async postprocess(ctx) {
        await ctx.writeOutput('0.png', TINY_PNG, 'image/png');
        if (fail) throw new Error('could not encode the image');
      },
    });
  for (const fail of [false, true]) {
    const t = await startTestService({ tools: [encodeLater(fail)] });
    t.net.images.set('https://images.example/face.png', TINY_PNG);
    try {
      const { json } = await t.post('/v1/Run/test/scripted', { inputImageUrl: 'https://images.example/face.png' });
      const task = await waitForTerminal(t, json.taskid as string);
      assert.equal(task.status, 'task_postprocess_end');
      assert.equal(task.pexit, fail ? '1' : '0');
      assert.equal((task.outputs as unknown[]).length, fail ? 0 : 1);
      if (fail) assert.match(task.debugerror as string, /could not encode/);
    } finally {
      await t.close();
    }
  }
});
