// The golden checker never passes what it did not judge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateCase } from '../../src/engine/golden/run.js';
import { parsePythonJson } from '../../src/engine/formats/pyjson.js';
import { golden } from '../helpers/paths.js';

function withCase(name: string, edit: (json: Record<string, unknown>) => void): { dir: string; done(): void } {
  const root = mkdtempSync(join(tmpdir(), 'likeness-golden-case-'));
  const dir = join(root, name);
  cpSync(golden(name), dir, { recursive: true });
  chmodSync(join(dir, 'case.json'), 0o644);
  const json = parsePythonJson(readFileSync(join(dir, 'case.json'), 'utf8')) as Record<string, unknown>;
  edit(json);
  writeFileSync(join(dir, 'case.json'), JSON.stringify(json));
  return { dir, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('an output listed in case.json that no check judges fails the case', async () => {
  const c = withCase('rng-torch-cpu', (json) => (json.outputs as string[]).push('randn_seed7_shape3'));
  try {
    const r = await evaluateCase(c.dir);
    assert.equal(r.status, 'FAIL');
    assert.ok(r.checks.some((k) => k.name === 'randn_seed7_shape3' && !k.pass));
  } finally {
    c.done();
  }
});

test('recorded scheduler noise with no generator to reproduce it fails instead of going unjudged', async () => {
  const c = withCase('scheduler-ddpm', (json) => {
    (json.loop as Record<string, unknown>).generator = 'a generator of unknown seed';
  });
  try {
    const r = await evaluateCase(c.dir);
    assert.equal(r.status, 'FAIL');
    assert.ok(r.checks.some((k) => k.name.endsWith('.noise') && !k.pass));
  } finally {
    c.done();
  }
});
