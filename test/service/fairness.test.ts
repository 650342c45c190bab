// Per-project limits and fair scheduling: a project with LIKENESS_MAX_ACTIVE_TASKS tasks queued or
// running gets 429 + Retry-After with Wiro's concurrency code 96 (another project is unaffected), and the
// worker takes turns between projects instead of draining one project's queue first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sign } from '../../src/service/auth.js';
import { startTestService, type TestService } from '../helpers/service.js';

let nonce = Date.now() + 777; // millisecond timestamps, one per request

/** A second project with its own key, and a poster signing for it. */
async function otherProject(s: TestService, name: string) {
  const store = s.service.ctx.store;
  const project = await store.createProject(name, 'signature');
  const { apiKey, apiSecret } = await store.createKey(project.id);
  return {
    id: project.id,
    async run(body: Record<string, unknown>) {
      const n = String(nonce++);
      const res = await fetch(`${s.url}/v1/Run/test/scripted`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': apiKey, 'x-nonce': n, 'x-signature': sign(apiKey, apiSecret!, n) },
        body: JSON.stringify(body),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), json: (await res.json()) as Record<string, unknown> };
    },
  };
}

test('a project at its active-task limit gets 429 with code 96 and Retry-After; another project still runs', async () => {
  const s = await startTestService({ worker: false, config: { maxActivePerProject: 3 } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await s.post('/v1/Run/test/scripted', { mode: 'ok' })).json.result, true);
    const res = await fetch(`${s.url}/v1/Run/test/scripted`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...s.signedHeaders() }, body: JSON.stringify({ mode: 'ok' }),
    });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    const body = (await res.json()) as { result: boolean; errors: { code: number; message: string }[] };
    assert.equal(body.result, false);
    assert.equal(body.errors[0]!.code, 96);
    assert.match(body.errors[0]!.message, /already has 3 tasks queued or running/);
    assert.equal((await s.service.ctx.store.listTasks(1, 0, 1)).total, 3);
    const b = await otherProject(s, 'b');
    assert.equal((await b.run({ mode: 'ok' })).json.result, true);
  } finally {
    await s.close();
  }
});

test('the worker alternates between projects: a late project waits one task, not the other project\'s whole queue', async () => {
  const s = await startTestService({ worker: false });
  try {
    for (let i = 0; i < 5; i++) await s.post('/v1/Run/test/scripted', { mode: 'ok' });
    const b = await otherProject(s, 'b');
    for (let i = 0; i < 2; i++) await b.run({ mode: 'ok' });
    const order: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t = (await s.service.ctx.store.claimNext('w'))!;
      order.push(t.projectId);
      await s.service.ctx.store.finish(t.id, 'task_postprocess_end', { pexit: '0' }, []);
    }
    assert.deepEqual(order, [1, b.id, 1, b.id, 1, 1, 1]);
  } finally {
    await s.close();
  }
});
