// `likeness preprocess openpose IMAGE -o OUT.png`: writes the pose map as a PNG of resize_image's size,
// and a missing model or a bad option is exit status 2 with a message saying what to do.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { run } from '../../src/cli/preprocess.js';
import { OPENPOSE_BODY_FILE } from '../../src/engine/control/openpose/index.js';
import { writeSmokeBodyPoseModel } from '../../src/engine/control/openpose/smoke.js';
import { asset } from '../helpers/paths.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-preprocess-'));
after(() => rmSync(home, { recursive: true, force: true }));

/** Runs the verb, collecting what it prints. */
async function preprocess(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => { out += `${a.join(' ')}\n`; };
  console.error = console.log;
  try {
    return { code: await run(args), out };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test('openpose writes a PNG pose map of the image resolution\'s size', async () => {
  await writeSmokeBodyPoseModel(join(home, OPENPOSE_BODY_FILE));
  const out = join(home, 'pose.png');
  const r = await preprocess(['openpose', asset('faces/fullbody_standing.jpg'), '-o', out, '--home', home, '--detect-resolution', '160', '--image-resolution', '72']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /openpose map 64×192 .* (person|people) found/);
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 64, 192, 3]);
});

test('a missing body model says which file to download and where it goes', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'likeness-preprocess-empty-'));
  try {
    const r = await preprocess(['openpose', asset('faces/fullbody_standing.jpg'), '-o', join(empty, 'x.png'), '--home', empty]);
    assert.equal(r.code, 2);
    assert.match(r.out, /body_pose_model\.pth/);
    assert.ok(r.out.includes(join(empty, OPENPOSE_BODY_FILE)), r.out);
    assert.ok(!existsSync(join(empty, 'x.png')));
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('usage errors: unknown kind, no output, bad resolution', async () => {
  assert.match((await preprocess(['sketch', 'a.png', '-o', 'b.png'])).out, /unknown kind "sketch" \(openpose, depth, canny\)/);
  assert.match((await preprocess(['openpose', 'a.png'])).out, /-o OUT\.png/);
  const bad = await preprocess(['openpose', asset('faces/fullbody_standing.jpg'), '-o', join(home, 'y.png'), '--home', home, '--detect-resolution', 'big']);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /--detect-resolution must be a whole number/);
});
