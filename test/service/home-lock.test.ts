// F8: one server per LIKENESS_HOME. A second server on the same data folder refuses to start, naming
// the first one's pid and address, and touches nothing of it (its running task is neither failed nor
// rerun); a lock left by a process that died is taken over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createService } from '../../src/service/app.js';
import { HomeLockedError } from '../../src/service/home-lock.js';
import { startTestService, waitForTerminal, scriptedTool, ScriptedRunner, FakeNetwork } from '../helpers/service.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

test('a second server on the same home refuses to start, names the first, and leaves its running task alone', async () => {
  const first = await startTestService();
  try {
    const { json } = await first.post('/v1/Run/test/scripted', { mode: 'gate' });
    for (let i = 0; i < 100 && (await first.service.ctx.store.getTaskById(Number(json.taskid)))!.status !== 'task_start'; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const config = loadConfig({ host: '127.0.0.1', port: 0, home: first.home }, {});
    await assert.rejects(
      createService(config, { tools: [scriptedTool(new ScriptedRunner())], net: new FakeNetwork(), log: quiet }),
      (err: Error) => {
        assert.ok(err instanceof HomeLockedError);
        assert.match(err.message, new RegExp(`pid ${process.pid}, listening on ${first.url.replace(/[.]/g, '\\.')}`));
        return true;
      },
    );
    assert.equal((await first.service.ctx.store.getTaskById(Number(json.taskid)))!.status, 'task_start', 'the second server touched the running task');
    first.runner.release();
    const task = await waitForTerminal(first, json.taskid as string);
    assert.equal(task.pexit, '0');
    assert.doesNotMatch(String(task.debugoutput), /requeued|stopped/);
  } finally {
    await first.close();
  }
});

test('a lock left by a process that has exited is stale: the next server takes it over, and close() removes it', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-lock-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout.trim());
    writeFileSync(join(home, 'likeness.lock'), JSON.stringify({ pid: deadPid, address: 'http://127.0.0.1:1', startedAt: 1 }));
    const s = await startTestService({ home });
    assert.equal((await s.post('/v1/Task/Detail', { taskid: '1' })).status, 200);
    await s.close();
    assert.equal(existsSync(join(home, 'likeness.lock')), false);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
