// The InstantID golden evaluators read everything from the case: a variant whose call no longer
// fits its recorded numbers FAILS, and an output the pipeline cannot produce FAILS with a note —
// nothing is skipped or passed by default. Variants are built in a temporary goldens folder whose
// other cases are symlinks to the real ones.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { golden, goldensDir } from '../../helpers/paths.js';
import { tempDir } from '../nets/fixtures.js';

const tmp = tempDir('likeness-instantid-variants-');
after(() => tmp.remove());
for (const name of readdirSync(goldensDir)) symlinkSync(join(goldensDir, name), join(tmp.dir, name));

/** A copy of case `name` (its files symlinked) with case.json changed by `edit`. */
function variant(name: string, suffix: string, edit: (json: Record<string, unknown>) => void): string {
  const dir = join(tmp.dir, `${name}-${suffix}`);
  mkdirSync(dir);
  for (const f of readdirSync(golden(name))) if (f !== 'case.json') symlinkSync(join(golden(name), f), join(dir, f));
  const json = parsePythonJson(readFileSync(join(golden(name), 'case.json'), 'utf8')) as Record<string, unknown>;
  edit(json);
  writeFileSync(join(dir, 'case.json'), JSON.stringify(json));
  return dir;
}

test('an output the pipeline does not produce fails with a note', async () => {
  const dir = variant('instantid-pipeline', 'unknown-output', (j) => { (j.outputs as string[]).push('step0.something_else'); });
  const r = await evaluateCase(dir);
  assert.equal(r.status, 'FAIL', formatResult(r, true));
  const bad = r.checks.filter((k) => !k.pass);
  assert.deepEqual(bad.map((k) => k.name), ['step0.something_else']);
  assert.match(bad[0]!.note ?? '', /no such intermediate/);
});

test('a call that does not fit the recorded numbers fails (ip scale, IdentityNet scale, mask-run outputs)', async () => {
  const ip = variant('instantid-pipeline', 'ip-scale', (j) => { ((j.config as Record<string, unknown>).call as Record<string, unknown>).ip_adapter_scale = 0.5; });
  const r1 = await evaluateCase(ip);
  assert.equal(r1.status, 'FAIL');
  assert.ok(r1.checks.find((k) => k.name === 'prompt_embeds')?.pass, 'text is unaffected');
  assert.ok(!r1.checks.find((k) => k.name === 'step0.noise_pred_uncond_text')?.pass, 'the UNet output moves');

  const scales = variant('instantid-pipeline-multicontrolnet', 'scales', (j) => {
    ((j.config as Record<string, unknown>).call as Record<string, unknown>).controlnet_conditioning_scale = [0.8, 0.3];
  });
  const r2 = await evaluateCase(scales);
  assert.equal(r2.status, 'FAIL');
  assert.ok(r2.checks.find((k) => k.name === 'step0.identitynet_mid')?.pass, 'net 0 unchanged');
  assert.ok(!r2.checks.find((k) => k.name === 'step0.controlnet2_mid')?.pass, 'net 1 scaled differently');

  const noMask = variant('instantid-pipeline-multicontrolnet', 'no-mask-input', (j) => {
    j.inputs = (j.inputs as string[]).filter((n) => n !== 'control_mask_uint8');
  });
  const r3 = await evaluateCase(noMask);
  assert.equal(r3.status, 'FAIL');
  assert.ok(r3.checks.filter((k) => k.name.startsWith('maskon.')).every((k) => !k.pass && /no control mask/.test(k.note ?? '')));
  assert.ok(r3.checks.filter((k) => !k.name.startsWith('maskon.')).every((k) => k.pass), 'the unmasked run is still checked');
});
