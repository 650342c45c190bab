// `likeness serve` as a new user meets it: a first start in an empty data folder makes a project and
// key, writes the smoke model set (saying it draws noise), listens, and stops cleanly on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';

test('a first start writes the smoke set, makes a key, listens and stops on SIGTERM', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-serve-'));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'serve', '--home', home, '--port', '0'], {
      cwd: repoRoot, env: { ...process.env, LIKENESS_DEFAULT_MODEL: '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!/first start: created project "default"/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const address = out.match(/listening on (http:\/\/[^\s]+)/)?.[1];
    assert.ok(address, out);
    assert.match(out, /smoke model set was written/);
    assert.match(out, /RANDOM weights and draws noise/);
    assert.doesNotMatch(out, /apiSecret|secret: [A-Za-z0-9]{20,}/, 'the secret is never printed by serve');
    assert.ok(existsSync(join(home, 'models', 'smoke', 'model_index.json')));
    const res = await fetch(`${address}/v1/Task/List`, { method: 'POST' });
    assert.equal(res.status, 401);
    assert.match(out, /execution provider: cpu on CPU/);
    assert.deepEqual(await (await fetch(`${address}/healthz`)).json(), { status: 'ok', executionProvider: 'cpu', adapter: 'CPU', float16: false });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

/** Runs `likeness serve` with `env` until it exits; its exit code and output. */
async function serveFails(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const home = mkdtempSync(join(tmpdir(), 'likeness-serve-ep-'));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'serve', '--home', home, '--port', '0'], {
      cwd: repoRoot, env: { ...process.env, LIKENESS_DEFAULT_MODEL: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, out };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

test('a provider that cannot start stops serve before it listens, naming what is missing; an unknown one names the choices', async () => {
  const noDriver = await serveFails({ LIKENESS_EP: 'webgpu', VK_ICD_FILENAMES: '/nonexistent/vk_icd.json' });
  assert.equal(noDriver.code, 1, noDriver.out);
  assert.match(noDriver.out, /likeness: execution provider webgpu cannot start: .*Vulkan/s);
  assert.doesNotMatch(noDriver.out, /listening on/);
  const unknown = await serveFails({ LIKENESS_EP: 'gpu' });
  assert.equal(unknown.code, 1, unknown.out);
  assert.match(unknown.out, /LIKENESS_EP must be one of cpu, webgpu, cuda, tensorrt; got "gpu"/);
});
