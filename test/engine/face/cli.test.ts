// likeness faces detect: what it prints for a face, for no face, and for a missing model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/cli/faces.js';
import { asset } from '../../helpers/paths.js';
import { DETECTOR } from './fixtures.js';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMOKE_FACE_DIR } from '../../../src/engine/smoke-instantid.js';

interface Printed { code: number; out: string; err: string }

async function faces(args: string[]): Promise<Printed> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const code = await run(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test('--json prints box, score and 5 keypoints per face in original pixels', async () => {
  const { code, out } = await faces(['detect', asset('faces/astronaut.png'), '--detector', DETECTOR, '--json', '--threads', '1']);
  assert.equal(code, 0);
  const doc = JSON.parse(out) as { width: number; height: number; detSize: number; faces: { box: number[]; score: number; kps: number[][]; chosen: boolean }[] };
  assert.deepEqual([doc.width, doc.height, doc.detSize], [512, 512, 640]);
  assert.equal(doc.faces.length, 1);
  const [face] = doc.faces;
  assert.deepEqual(face!.box, [180.12, 60.19, 271.6, 179.74]);
  assert.equal(face!.score, 0.8);
  assert.deepEqual(face!.kps, [[204.13, 100.59], [246.77, 103.56], [223.84, 129.15], [201.98, 139.71], [245.68, 142.34]]);
  assert.equal(face!.chosen, true);
});

test('text output marks the face InstantID would use', async () => {
  const { code, out } = await faces(['detect', asset('faces/solvay_1927_1024w.jpg'), '--detector', DETECTOR, '--threads', '1']);
  assert.equal(code, 0);
  assert.match(out, /1024×741, 29 faces \(detection size 640\)/);
  assert.equal(out.split('\n').filter((l) => l.startsWith('*')).length, 2); // the chosen face and the legend
});

test('no face: exit status 1 and an empty list', async () => {
  const { code, out } = await faces(['detect', asset('faces/rocket_noface.jpg'), '--detector', DETECTOR, '--json', '--no-retry', '--threads', '1']);
  assert.equal(code, 1);
  assert.deepEqual((JSON.parse(out) as { faces: unknown[] }).faces, []);
});

test('a missing detector: exit status 2 and how to install it', async () => {
  const { code, err } = await faces(['detect', asset('faces/astronaut.png'), '--detector', '/nonexistent/scrfd_10g_bnkps.onnx']);
  assert.equal(code, 2);
  assert.match(err, /face detector model not found: \/nonexistent\/scrfd_10g_bnkps\.onnx.*antelopev2/);
});

test('without --detector it finds the detector `models smoke --detector` copied into the smoke set', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-faces-'));
  try {
    mkdirSync(join(home, SMOKE_FACE_DIR), { recursive: true });
    copyFileSync(DETECTOR, join(home, SMOKE_FACE_DIR, 'det_500m.onnx'));
    const { code, out } = await faces(['detect', asset('faces/astronaut.png'), '--home', home, '--json', '--threads', '1']);
    assert.equal(code, 0);
    const doc = JSON.parse(out) as { detector: string; faces: unknown[] };
    assert.equal(doc.detector, join(home, SMOKE_FACE_DIR, 'det_500m.onnx'));
    assert.equal(doc.faces.length, 1);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('usage errors exit with status 2', async () => {
  assert.equal((await faces(['detect'])).code, 2);
  assert.equal((await faces(['detect', 'a.png', '--det-size', '100'])).code, 2);
  assert.equal((await faces(['explode', 'a.png'])).code, 2);
});
