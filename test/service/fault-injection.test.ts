// The fault-injection test: 50 tasks submitted to a real server process while it is killed with
// SIGKILL at random moments, another process holds the database's write lock now and then, and the
// disk is "full" (every file write fails with ENOSPC) for moments. At the end
// every accepted task is in exactly one terminal state, none is lost, none ran twice (so none is billed
// twice), finished ones have their output and failed ones cost nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/service/app.js';
import { sign } from '../../src/service/auth.js';
import { repoRoot } from '../helpers/paths.js';

const TASKS = 50;
const TERMINAL = ['task_postprocess_end', 'task_cancel', 'task_error'];

/** Seeded, so a failure can be replayed (the seed is printed in the assertion messages). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => ((x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function startServer(home: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test', 'service', 'fixtures', 'fault-server.ts'), home], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /LISTENING (\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]! });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${out}`)));
  });
}

test('50 tasks through random kill -9s, database locks and full-disk moments: each ends once, none lost, none run twice', { timeout: 120_000 }, async () => {
  const seed = Number(process.env.LIKENESS_FAULT_SEED ?? Date.now() % 100_000);
  const random = rng(seed);
  const home = mkdtempSync(join(tmpdir(), 'likeness-fault-'));
  const store = openStore({ home });
  const project = await store.createProject('default', 'signature');
  const { apiKey, apiSecret } = await store.createKey(project.id);
  await store.close();
  let nonce = Date.now(); // millisecond timestamps, one per request
  const accepted = new Set<number>();
  let server = await startServer(home);
  let kills = 0;
  let locks = 0;
  let fulls = 0;
  try {
    let submitted = 0;
    while (submitted < TASKS) {
      const roll = random();
      if (roll < 0.06) {
        server.child.kill('SIGKILL');
        await new Promise((r) => server.child.once('exit', r));
        kills++;
        server = await startServer(home);
        continue;
      }
      if (roll < 0.13 && roll >= 0.1) {
        // A full-disk moment: the server's file writes fail for a while.
        writeFileSync(join(home, 'disk-full'), '');
        await new Promise((r) => setTimeout(r, 100 + random() * 300));
        rmSync(join(home, 'disk-full'), { force: true });
        fulls++;
        continue;
      }
      if (roll < 0.1) {
        // Another process takes the write lock for longer than the server's retry window at times.
        const db = new Database(join(home, 'likeness.db'));
        db.exec('BEGIN IMMEDIATE');
        await new Promise((r) => setTimeout(r, 100 + random() * 600));
        db.exec('COMMIT');
        db.close();
        locks++;
        continue;
      }
      const n = String(nonce++);
      try {
        const res = await fetch(`${server.url}/v1/Run/test/scripted`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': apiKey, 'x-nonce': n, 'x-signature': sign(apiKey, apiSecret!, n) },
          body: JSON.stringify({ mode: 'ok' }),
        });
        const json = (await res.json()) as { result: boolean; taskid?: string };
        if (json.result) accepted.add(Number(json.taskid));
        submitted++;
      } catch {
        /* the server was between lives: the client would retry */
      }
      await new Promise((r) => setTimeout(r, random() * 40));
    }
    // The last life runs what is left.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const db = new Database(join(home, 'likeness.db'), { readonly: true });
      const open = (db.prepare(`SELECT COUNT(*) AS n FROM tasks WHERE status NOT IN (${TERMINAL.map(() => '?').join(',')})`).get(...TERMINAL) as { n: number }).n;
      db.close();
      if (open === 0) break;
      assert.ok(Date.now() < deadline, `seed ${seed}: ${open} tasks never ended`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    server.child.kill('SIGKILL');
    await new Promise((r) => (server.child.exitCode !== null ? r(undefined) : server.child.once('exit', r)));
  }
  try {
    const db = new Database(join(home, 'likeness.db'), { readonly: true });
    const tasks = db.prepare('SELECT id, status, pexit, debugerror, postprocessendtime, canceltime FROM tasks').all() as {
      id: number; status: string; pexit: string | null; debugerror: string; postprocessendtime: number | null; canceltime: number | null;
    }[];
    const outputs = new Map((db.prepare("SELECT task_id, COUNT(*) AS n FROM files WHERE role = 'output' GROUP BY task_id").all() as { task_id: number; n: number }[])
      .map((r) => [r.task_id, r.n]));
    db.close();
    const ids = new Set(tasks.map((t) => t.id));
    for (const id of accepted) assert.ok(ids.has(id), `seed ${seed}: accepted task ${id} was lost`);
    const runs = existsSync(join(home, 'runs.log')) ? readFileSync(join(home, 'runs.log'), 'utf8').split('\n').filter(Boolean).map(Number) : [];
    const runCount = new Map<number, number>();
    for (const id of runs) runCount.set(id, (runCount.get(id) ?? 0) + 1);
    for (const t of tasks) {
      const why = `seed ${seed}, task ${t.id} (${t.status}, pexit ${t.pexit}, ${t.debugerror})`;
      assert.ok(TERMINAL.includes(t.status), why);
      assert.ok(!(t.postprocessendtime !== null && t.canceltime !== null), `${why}: two terminal times`);
      assert.ok((runCount.get(t.id) ?? 0) <= 1, `${why}: ran ${runCount.get(t.id)} times`);
      if (t.status === 'task_postprocess_end' && t.pexit === '0') assert.equal(outputs.get(t.id), 1, `${why}: finished without its output`);
      else assert.equal(outputs.get(t.id) ?? 0, 0, `${why}: failed but kept outputs`);
      if (t.pexit === '1') assert.notEqual(t.debugerror, '', `${why}: failed without a reason`);
    }
    assert.ok(accepted.size >= TASKS * 0.8, `seed ${seed}: only ${accepted.size} Runs were answered`);
    console.log(`fault injection (seed ${seed}): ${tasks.length} tasks, ${kills} kills, ${locks} locks, ${fulls} full-disk moments, ` +
      `${tasks.filter((t) => t.pexit === '0').length} finished, ${tasks.filter((t) => t.pexit === '1').length} failed`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
