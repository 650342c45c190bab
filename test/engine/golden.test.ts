// Every golden case whose kind the engine implements must pass; the rest are reported as not implemented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parsePythonJson } from '../../src/engine/formats/pyjson.js';
import { evaluateCase, formatResult, isImplemented } from '../../src/engine/golden/run.js';
import { allGoldenCases } from '../helpers/paths.js';

for (const dir of allGoldenCases()) {
  const { kind } = parsePythonJson(readFileSync(join(dir, 'case.json'), 'utf8')) as { kind: string };
  const name = basename(dir);
  if (!isImplemented(kind)) {
    test(`golden ${name}: kind ${kind} is reported NOT IMPLEMENTED, never passed`, async () => {
      const r = await evaluateCase(dir);
      assert.equal(r.status, 'NOT IMPLEMENTED');
    });
    continue;
  }
  test(`golden ${name} (${kind}) matches the reference`, async () => {
    const r = await evaluateCase(dir);
    assert.equal(r.status, 'PASS', formatResult(r, true));
  });
}
