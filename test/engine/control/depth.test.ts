// Depth Anything as the InstantID Space runs it: the network against the golden (both position
// interpolations), the Space's input sizing, the resamplers' defining properties, the map's
// min–max/truncation, and the messages a user gets for missing files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DepthEstimator, depthInputSize, depthToUint8, findDepthAnythingFiles, interpolatePositions, interpolationForVersion, parseDepthAnythingConfig,
} from '../../../src/engine/control/depth/index.js';
import { cvResizeCubicF64, torchBilinearPlane } from '../../../src/engine/control/depth/interpolate.js';
import { loadCase } from '../../../src/engine/golden/case.js';
import { evaluateCase } from '../../../src/engine/golden/run.js';
import { golden } from '../../helpers/paths.js';

test('the depth-anything golden passes: network, Space pipeline and the 4.41 interpolation variant', async () => {
  const r = await evaluateCase(golden('depth-anything'));
  assert.equal(r.status, 'PASS', r.checks.filter((k) => !k.pass).map((k) => `${k.name}: ${k.maxAbsError} ${k.note ?? ''}`).join('\n') + (r.error ?? ''));
  assert.ok(r.checks.some((k) => k.name.startsWith('t441.')), 'the t441 outputs are checked');
});

test('estimate() gives the golden pipeline map at the photo size', async () => {
  const c = loadCase(golden('depth-anything'));
  try {
    const [h, w] = c.io().info('pipeline.input_rgb_uint8').shape as [number, number];
    const est = await DepthEstimator.fromFiles(c.config, c.file('weights.safetensors'), { cacheDir: join(tmpdir(), 'likeness-golden-onnx') });
    try {
      const map = await est.estimate({ data: Uint8Array.from(c.io().readFloat32('pipeline.input_rgb_uint8')), width: w, height: h });
      assert.deepEqual([map.width, map.height, map.netWidth, map.netHeight], [w, h, 840, 518]);
      const expected = c.io().readFloat32('pipeline.depth_uint8');
      let differing = 0;
      for (let i = 0; i < expected.length; i++) if (map.data[i] !== expected[i]) differing++;
      assert.ok(differing <= expected.length * 0.01, `${differing} pixels differ`);
    } finally {
      await est.dispose();
    }
  } finally {
    c.close();
  }
});

test('predict() as transformers forward: a batch is each image alone; sides past a multiple of 14 are ignored', async () => {
  const c = loadCase(golden('depth-anything'));
  try {
    const est = await DepthEstimator.fromFiles(c.config, c.file('weights.safetensors'), { cacheDir: join(tmpdir(), 'likeness-golden-onnx') });
    try {
      const px = c.io().readFloat32('y_pose_landscape.pixel_values'); // [1, 3, 42, 70]
      const expected = c.io().readFloat32('y_pose_landscape.predicted_depth');
      const flipped = px.map((v) => -v);
      const batch = await est.predict({ dtype: 'float32', dims: [2, 3, 42, 70], data: Float32Array.from([...px, ...flipped]) });
      const alone = await est.predict({ dtype: 'float32', dims: [1, 3, 42, 70], data: flipped });
      assert.deepEqual(batch.dims, [2, 42, 70]);
      const n = 42 * 70;
      assert.ok(batch.data.subarray(0, n).every((v, i) => Math.abs(v - expected[i]!) < 1e-4));
      assert.ok(batch.data.subarray(n).every((v, i) => Math.abs(v - alone.data[i]!) < 1e-5));
      // 45×75: the patch conv floors to the same 3×5 grid, and the head resizes to 42×70.
      const padded = new Float32Array(3 * 45 * 75);
      for (let ch = 0; ch < 3; ch++) for (let y = 0; y < 42; y++) for (let x = 0; x < 70; x++) padded[(ch * 45 + y) * 75 + x] = px[(ch * 42 + y) * 70 + x]!;
      const bigger = await est.predict({ dtype: 'float32', dims: [1, 3, 45, 75], data: padded });
      assert.deepEqual(bigger.dims, [1, 42, 70]);
      assert.ok(bigger.data.every((v, i) => Math.abs(v - expected[i]!) < 1e-4));
    } finally {
      await est.dispose();
    }
  } finally {
    c.close();
  }
});

test('network input size: lower bound 518 on the short side, multiple of 14, np.round half to even, ceil when under the bound', () => {
  assert.deepEqual(depthInputSize(74, 121), { height: 518, width: 840 }); // 847/14 = 60.5 → 60
  assert.deepEqual(depthInputSize(512, 512), { height: 518, width: 518 });
  assert.deepEqual(depthInputSize(1024, 768), { height: 686, width: 518 }); // 690.67/14 = 49.3 → 49
  assert.deepEqual(depthInputSize(100, 100, 50), { height: 56, width: 56 }); // 50/14 = 3.57 → 4
  assert.deepEqual(depthInputSize(100, 100, 60), { height: 70, width: 70 }); // round(60/14) = 4 → 56 < 60 → ceil → 70
});

test('the position interpolation follows the config: size from transformers 4.46, scale_factor before or when unknown', () => {
  assert.equal(interpolationForVersion('4.57.6'), 'size');
  assert.equal(interpolationForVersion('4.46.0'), 'size');
  assert.equal(interpolationForVersion('4.41.0.dev0'), 'scale_factor');
  assert.equal(interpolationForVersion(undefined), 'scale_factor');
  const c = loadCase(golden('depth-anything'));
  assert.equal(parseDepthAnythingConfig(c.config).positionInterpolation, 'size');
  assert.equal(parseDepthAnythingConfig(c.config, { positionInterpolation: 'scale_factor' }).positionInterpolation, 'scale_factor');
});

test('position table: kept on its own square grid; an unchanged axis is the identity by size, resampled by scale factor', () => {
  const cfg = { ...parseDepthAnythingConfig(loadCase(golden('depth-anything')).config), hidden: 1 };
  const g = 4;
  // A table that varies along x only: by size, 4 → 6 rows keep every row equal to the source row.
  const table = new Float32Array(1 + g * g).map((_, i) => (i === 0 ? 9 : Math.sin(((i - 1) % g) * 1.7)));
  assert.equal(interpolatePositions(table, cfg, g, g), table);
  const bySize = interpolatePositions(table, { ...cfg, positionInterpolation: 'size' }, 6, g);
  const byScale = interpolatePositions(table, { ...cfg, positionInterpolation: 'scale_factor' }, 6, g);
  assert.equal(bySize.length, 1 + 6 * g);
  assert.equal(bySize[0], 9, 'the cls position is kept');
  for (let y = 0; y < 6; y++) for (let x = 0; x < g; x++) assert.ok(Math.abs(bySize[1 + y * g + x]! - table[1 + x]!) < 1e-6, `size: row ${y} col ${x}`);
  assert.ok([...byScale].some((v, i) => Math.abs(v - bySize[i]!) > 1e-2), 'scale_factor resamples the unchanged axis too');
});

test('cv2 INTER_CUBIC (A = -0.75) keeps constants; a half-way sample of a ramp is its midpoint', () => {
  const flat = cvResizeCubicF64(new Float64Array(5 * 7 * 3).fill(0.25), 5, 7, 3, 11, 13);
  assert.ok(flat.every((v) => Math.abs(v - 0.25) < 1e-6));
  // 8 → 4 samples at source x = 2o + 0.5: symmetric taps, so a linear ramp is reproduced where no tap is clamped.
  const down = cvResizeCubicF64(new Float64Array(8).map((_, x) => x / 10), 1, 8, 1, 1, 4);
  for (const o of [1, 2]) assert.ok(Math.abs(down[o]! - (2 * o + 0.5) / 10) < 1e-6, `column ${o}: ${down[o]}`);
  // Edge taps replicate the border: taps (0, 0, 0.1, 0.2) with weights (-0.09375, 0.59375, 0.59375, -0.09375).
  assert.ok(Math.abs(down[0]! - (0.1 * 0.59375 - 0.2 * 0.09375)) < 1e-9, `column 0: ${down[0]}`);
});

test('torch bilinear (align_corners=False) clamps at the edges and interpolates half-pixel centres', () => {
  const out = torchBilinearPlane(Float32Array.of(0, 10), 1, 2, 1, 4);
  assert.deepEqual([...out], [0, 2.5, 7.5, 10]);
});

test('the 8-bit map spans 0..255 by min–max and truncates; a flat depth gives zeros', () => {
  const p = depthToUint8(Float32Array.of(1, 2, 3, 1.5), 2, 2, 2, 2);
  assert.deepEqual([...p.uint8], [0, 127, 255, 63]); // 127.5 → 127, 63.75 → 63
  assert.deepEqual([p.min, p.max], [1, 3]);
  assert.ok(depthToUint8(new Float32Array(4).fill(0.3), 2, 2, 2, 2).uint8.every((v) => v === 0));
});

test('missing files say what to download, where, and its licence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'depth-files-'));
  try {
    assert.throws(() => findDepthAnythingFiles(join(dir, 'nope')), /LiheYoung\/depth-anything-small-hf.*Apache-2\.0/);
    assert.throws(() => findDepthAnythingFiles(dir), /no model\.safetensors.*depth-anything-small-hf/);
    writeFileSync(join(dir, 'model.safetensors'), '');
    assert.throws(() => findDepthAnythingFiles(dir), /no config\.json/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'dpt' }));
    assert.throws(() => parseDepthAnythingConfig(findDepthAnythingFiles(dir).config), /dpt model, not depth_anything/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
