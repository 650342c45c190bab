// F10 and retention: every file a task touched — the upload, the face photo fetched from a URL, its
// outputs, its staging folder — is removed by Task/InputOutputDelete, and by LIKENESS_RETENTION once the
// task ended that long ago. The task record itself stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseRetention } from '../../src/config.js';
import { startTestService, waitForTerminal, TINY_PNG, FakeNetwork, type TestService } from '../helpers/service.js';

const URL = 'https://images.example/face.png';

/** Every file under the data folder's file store, relative. */
function storedFiles(s: TestService): string[] {
  const root = join(s.home, 'files');
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(root.length + 1));
}

async function runBoth(s: TestService): Promise<{ byUrl: Record<string, unknown>; byUpload: Record<string, unknown> }> {
  const byUrl = (await s.post('/v1/Run/test/scripted', { inputImageUrl: URL })).json.taskid as string;
  const form = new FormData();
  form.set('inputImage', new Blob([TINY_PNG]), 'me.png');
  const res = await fetch(`${s.url}/v1/Run/test/scripted`, { method: 'POST', headers: s.signedHeaders(), body: form });
  const byUpload = ((await res.json()) as { taskid: string }).taskid;
  return { byUrl: await waitForTerminal(s, byUrl), byUpload: await waitForTerminal(s, byUpload) };
}

test('InputOutputDelete removes the fetched face photo, the upload and the outputs: nothing of the task is left', async () => {
  const net = new FakeNetwork();
  net.images.set(URL, TINY_PNG);
  const s = await startTestService({ network: net });
  try {
    const { byUrl, byUpload } = await runBoth(s);
    assert.ok(storedFiles(s).some((f) => f.startsWith(join('tasks', String(byUrl.id), 'inputs'))), 'the fetched photo was not kept for the run');
    for (const task of [byUrl, byUpload]) {
      const { json } = await s.post('/v1/Task/InputOutputDelete', { taskid: task.id });
      assert.equal(json.result, true);
      for (const o of task.outputs as { url: string }[]) assert.equal((await fetch(o.url)).status, 404);
    }
    assert.deepEqual(storedFiles(s), []);
  } finally {
    await s.close();
  }
});

test('retention removes the files of tasks that ended longer ago than LIKENESS_RETENTION, keeping the records', async () => {
  const net = new FakeNetwork();
  net.images.set(URL, TINY_PNG);
  const s = await startTestService({ network: net, config: { retentionMs: 300 } });
  try {
    const { byUrl, byUpload } = await runBoth(s);
    await new Promise((r) => setTimeout(r, 350));
    await s.service.retention.sweep();
    assert.deepEqual(storedFiles(s), []);
    for (const task of [byUrl, byUpload]) {
      const again = (await s.post('/v1/Task/Detail', { taskid: task.id })).json.tasklist as Record<string, unknown>[];
      assert.equal(again[0]!.status, 'task_postprocess_end');
      assert.deepEqual(again[0]!.outputs, []);
    }
  } finally {
    await s.close();
  }
});

test('LIKENESS_RETENTION reads days, hours, minutes and seconds; 0 keeps files', () => {
  assert.equal(parseRetention('7d'), 7 * 86_400_000);
  assert.equal(parseRetention('12h'), 12 * 3_600_000);
  assert.equal(parseRetention('90'), 90_000);
  assert.equal(parseRetention('0'), 0);
  assert.throws(() => parseRetention('a week'), /LIKENESS_RETENTION must be a duration/);
});
