// Downloads that never hold the engine (issue 13, F6): while one task computes, the next queued tasks'
// URL inputs are downloaded, so the engine does not sit idle through a slow tenant's download. A
// prefetch changes nothing a client sees (the task stays queued), a Kill of the queued task aborts it,
// LIKENESS_PREFETCH=0 turns it off, and a failed prefetch fails the task exactly as it fails today.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestService, TINY_PNG, waitForTerminal, type TestService } from '../helpers/service.js';
import { startServer, type TestServer } from '../net/helpers.js';

let web: TestServer;
/** Requests for /hang.png whose connection has closed (the fetcher gave up). */
let hangClosed = 0;
before(async () => {
  web = await startServer({
    '/face.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(TINY_PNG),
    // Sends the PNG signature, then nothing: a download that never finishes until someone aborts it.
    '/hang.png': (_q, res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '100000' });
      res.write(TINY_PNG.subarray(0, 8));
      res.on('close', () => hangClosed++);
    },
  });
});
after(async () => {
  await web.close();
});

const start = (prefetchTasks?: number) =>
  startTestService({ realNetwork: true, config: { fetchAllow: ['127.0.0.1'], ...(prefetchTasks !== undefined ? { prefetchTasks } : {}) } });

async function run(s: TestService, body: Record<string, unknown>): Promise<string> {
  const { json } = await s.post('/v1/Run/test/scripted', body);
  assert.equal(json.result, true, JSON.stringify(json));
  return json.taskid as string;
}

async function detail(s: TestService, taskid: string): Promise<Record<string, unknown>> {
  const { json } = await s.post('/v1/Task/Detail', { taskid });
  return (json.tasklist as Record<string, unknown>[])[0]!;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Task 1 holds the engine (a gated run) until the test releases it. */
async function busyEngine(s: TestService): Promise<string> {
  const id = await run(s, { mode: 'gate' });
  await until('task 1 to run', async () => (await detail(s, id)).status === 'task_start');
  return id;
}

const hitsOf = (path: string) => web.hits.filter((h) => h === path).length;

test('while task 1 computes, task 2\'s inputImageUrl is downloaded; task 2 then runs on it without a second request', async () => {
  const s = await start();
  try {
    const first = await busyEngine(s);
    const path = '/face.png?task=2';
    const second = await run(s, { mode: 'ok', inputImageUrl: web.url(path) });
    await until('the prefetch request', () => hitsOf(path) === 1);
    // the prefetch is invisible to clients: task 2 is still queued, nothing written to it
    const queued = await detail(s, second);
    assert.equal(queued.status, 'task_queue');
    assert.equal(queued.debugoutput, '');
    assert.notEqual((await detail(s, first)).status, 'task_postprocess_end', 'the request came while task 1 was still running');

    s.runner.release();
    const done = await waitForTerminal(s, second);
    assert.equal(done.status, 'task_postprocess_end');
    assert.equal(done.pexit, '0', String(done.debugerror));
    assert.equal(hitsOf(path), 1, 'no second download');
    assert.match(done.debugoutput as string, /^inputImageUrl: downloaded while the previous task ran \(\d+ bytes in \d+\.\d s\)$/m);
    assert.doesNotMatch(done.debugoutput as string, /\/tmp|likeness-test|127\.0\.0\.1/);
    assert.equal((await waitForTerminal(s, first)).pexit, '0');
  } finally {
    await s.close();
  }
});

test('Kill of a queued task aborts its prefetch (the connection is closed) and ends it as task_cancel', async () => {
  const s = await start();
  try {
    await busyEngine(s);
    const closedBefore = hangClosed;
    const path = '/hang.png?task=kill';
    const queued = await run(s, { mode: 'ok', inputImageUrl: web.url(path) });
    await until('the prefetch request', () => hitsOf(path) === 1);
    const { json } = await s.post('/v1/Task/Kill', { taskid: queued });
    assert.equal(json.result, true);
    assert.equal((json.tasklist as Record<string, unknown>[])[0]!.status, 'task_cancel');
    await until('the download to be aborted', () => hangClosed === closedBefore + 1, 2000);
    s.runner.release();
    assert.equal((await detail(s, queued)).status, 'task_cancel');
  } finally {
    await s.close();
  }
});

test('a server stop aborts prefetches at once; the queued task stays queued for the next start', async () => {
  const s = await start();
  const closedBefore = hangClosed;
  const path = '/hang.png?task=stop';
  await busyEngine(s);
  const queued = await run(s, { mode: 'ok', inputImageUrl: web.url(path) });
  await until('the prefetch request', () => hitsOf(path) === 1);
  const id = Number((await s.service.ctx.store.listTasks(1, 0, 1)).tasks[0]!.id);
  const stopping = s.service.shutdown(5000); // task 1 gets its grace; the prefetch does not wait for it
  await until('the download to be aborted', () => hangClosed === closedBefore + 1, 2000);
  assert.equal((await s.service.ctx.store.getTaskById(id))?.status, 'task_queue', `task ${queued}`);
  s.runner.release();
  await stopping;
  await s.close();
});

test('LIKENESS_PREFETCH=0: nothing is downloaded before the task is claimed', async () => {
  const s = await start(0);
  try {
    await busyEngine(s);
    const path = '/face.png?task=off';
    const second = await run(s, { mode: 'ok', inputImageUrl: web.url(path) });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hitsOf(path), 0);
    s.runner.release();
    const done = await waitForTerminal(s, second);
    assert.equal(done.pexit, '0', String(done.debugerror));
    assert.equal(hitsOf(path), 1);
    assert.doesNotMatch(done.debugoutput as string, /while the previous task ran/);
  } finally {
    await s.close();
  }
});

test('a prefetch that failed (404) is fetched again in preprocess: the task fails with the same message as without prefetch', async () => {
  const path = '/missing.png';
  const failWith = async (prefetchTasks: number): Promise<{ debugerror: string; requests: number }> => {
    const s = await start(prefetchTasks);
    try {
      const before = hitsOf(path);
      await busyEngine(s);
      const id = await run(s, { mode: 'ok', inputImageUrl: web.url(path) });
      if (prefetchTasks > 0) await until('the prefetch request', () => hitsOf(path) === before + 1);
      s.runner.release();
      const task = await waitForTerminal(s, id);
      assert.equal(task.status, 'task_postprocess_end');
      assert.equal(task.pexit, '1');
      return { debugerror: task.debugerror as string, requests: hitsOf(path) - before };
    } finally {
      await s.close();
    }
  };
  const without = await failWith(0);
  const withPrefetch = await failWith(2);
  assert.match(without.debugerror, /^inputImageUrl .*404/);
  assert.equal(withPrefetch.debugerror, without.debugerror);
  assert.deepEqual([without.requests, withPrefetch.requests], [1, 2]);
});

test('peekQueued forecasts the claim order (fair across projects) without claiming anything', async () => {
  const s = await startTestService({ worker: false });
  try {
    const store = s.service.ctx.store;
    for (let i = 0; i < 3; i++) await run(s, { mode: 'ok' });
    const b = await store.createProject('b', 'apikey');
    const { apiKey } = await store.createKey(b.id);
    const res = await fetch(`${s.url}/v1/Run/test/scripted`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: '{"mode":"ok"}' });
    assert.equal(((await res.json()) as { result: boolean }).result, true);
    const forecast = (await store.peekQueued(10)).map((t) => t.id);
    assert.equal((await store.peekQueued(2)).length, 2);
    assert.deepEqual((await store.listTasks(1, 0, 10)).tasks.map((t) => t.status), ['task_queue', 'task_queue', 'task_queue']);
    const claimed: number[] = [];
    for (let t = await store.claimNext('w'); t; t = await store.claimNext('w')) claimed.push(t.id);
    assert.deepEqual(forecast, claimed);
    assert.equal(claimed.length, 4);
  } finally {
    await s.close();
  }
});

test('LIKENESS_PREFETCH defaults to 2 and must be a whole number from 0 to 16', async () => {
  const { loadConfig } = await import('../../src/config.js');
  assert.equal(loadConfig({}, {}).prefetchTasks, 2);
  assert.equal(loadConfig({}, { LIKENESS_PREFETCH: '0' }).prefetchTasks, 0);
  assert.throws(() => loadConfig({}, { LIKENESS_PREFETCH: 'lots' }), /LIKENESS_PREFETCH must be a whole number of queued tasks from 0 \(off\) to 16/);
  assert.throws(() => loadConfig({}, { LIKENESS_PREFETCH: '1.5' }), /LIKENESS_PREFETCH/);
});
