// One InstantID task end to end on the WebGPU provider, through `likeness serve` as a user starts it
// (LIKENESS_EP=webgpu, face analysis on the CPU, a child process): the start-up probe and log line, GET /healthz naming the
// provider, then a signed Run on the smoke set at 64×64, 2 steps, polled to a PNG. The smoke set has
// random weights, so what is checked is that the GPU path runs the whole pipeline, not the picture.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import sharp from 'sharp';
import { writeSmokeInstantIdSet } from '../../../src/engine/smoke-instantid.js';
import { sign } from '../../../src/service/auth.js';
import { SqliteTaskStore } from '../../../src/service/store/sqlite.js';
import { asset, repoRoot } from '../../helpers/paths.js';
import { webgpuTest } from './webgpu-env.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-webgpu-e2e-'));
let child: ChildProcess | undefined;

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(home, { recursive: true, force: true });
});

/** Starts `likeness serve` on a free port; resolves with its URL and everything it printed so far. */
function serve(): Promise<{ url: string; log: () => string }> {
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--home', home, '--host', '127.0.0.1', '--port', '0'], {
    cwd: repoRoot,
    // Face analysis on the CPU: on SwiftShader the 640² detector alone would take most of the budget.
    env: { ...process.env, LIKENESS_EP: 'webgpu', LIKENESS_FACE_EP: 'cpu', LIKENESS_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = p;
  let out = '';
  p.stdout!.on('data', (d) => { out += String(d); });
  p.stderr!.on('data', (d) => { out += String(d); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in 60 s:\n${out}`)), 60_000);
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited (${code}):\n${out}`)); });
    const poll = setInterval(() => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m && /execution provider: /.test(out)) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve({ url: m[1]!, log: () => out });
      }
    }, 50);
  });
}

webgpuTest('a Run through `likeness serve` with LIKENESS_EP=webgpu: /healthz names the provider, the task ends with a 64×64 PNG', async (t) => {
  await writeSmokeInstantIdSet(home, { detector: asset('models/det_500m.onnx') });
  const { url, log } = await serve();
  assert.match(log(), /execution provider: webgpu on /);

  const health = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
  assert.equal(health.status, 'ok');
  assert.equal(health.executionProvider, 'webgpu');
  assert.equal(typeof health.adapter, 'string');

  const store = new SqliteTaskStore(join(home, 'likeness.db'));
  const project = (await store.findProject('default'))!;
  const { apiKey, apiSecret } = await store.createKey(project.id);
  await store.close();
  let nonce = Date.now(); // millisecond timestamps, one per request (the replay rules: a fresh timestamp in the window)
  const headers = (): Record<string, string> => {
    const n = String(nonce++);
    return { 'x-api-key': apiKey, 'x-nonce': n, 'x-signature': sign(apiKey, apiSecret!, n) };
  };
  const form = new FormData();
  for (const [k, v] of Object.entries({ prompt: 'a watercolor portrait', width: 64, height: 64, steps: 2, samples: 1 })) form.set(k, String(v));
  form.set('inputImage', new Blob([readFileSync(asset('faces/astronaut.png'))]), 'astronaut.png');
  const run = (await (await fetch(`${url}/v1/Run/wiro/instant-id-controlnet-lora`, { method: 'POST', headers: headers(), body: form })).json()) as Record<string, unknown>;
  assert.equal(run.result, true, JSON.stringify(run));

  const end = Date.now() + 240_000;
  let task: Record<string, unknown>;
  for (;;) {
    const res = await fetch(`${url}/v1/Task/Detail`, {
      method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: JSON.stringify({ taskid: run.taskid }),
    }).catch((err: unknown) => { throw new Error(`Task/Detail failed (${String((err as { cause?: unknown }).cause ?? err)})\n${log()}`); });
    task = ((await res.json()) as { tasklist: Record<string, unknown>[] }).tasklist[0]!;
    if (['task_postprocess_end', 'task_cancel', 'task_error'].includes(task.status as string)) break;
    assert.ok(Date.now() < end, `task still ${String(task.status)} after 240 s\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(task.status, 'task_postprocess_end', `${String(task.debugerror)}\n${log()}`);
  assert.equal(task.pexit, '0');
  t.diagnostic(String(task.debugoutput).split('\n').filter((l) => /\d+(\.\d+)? ?(ms|s)\b/.test(l)).join(' | '));
  const outputs = task.outputs as { name: string; url: string }[];
  assert.equal(outputs.length, 1);
  // File links carry LIKENESS_PUBLIC_URL's origin (the default port); this server listens on a free one.
  const file = new URL(new URL(outputs[0]!.url).pathname, url);
  const meta = await sharp(Buffer.from(await (await fetch(file)).arrayBuffer())).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
});
