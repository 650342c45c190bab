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
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
