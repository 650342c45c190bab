// The InstantID pipelines on the goldens' tiny parts: the two golden cases through their evaluators,
// then behaviour the goldens do not pin down: IP scale, per-step progress, abort between steps, the
// face-region mask (full = none, box = image), the ControlNet guidance window, samples, validation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { loadCase, type GoldenCase } from '../../../src/engine/golden/case.js';
import { goldenCacheDir } from '../../../src/engine/golden/net-io.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { caseRunOptions, ioImage, openGoldenInstantIdParts } from '../../../src/engine/golden/kinds/instantid_pipeline.js';
import { InstantIdPipeline, resultPng, resultRgb8, type InstantIdRunOptions } from '../../../src/engine/pipelines/instantid.js';
import { golden } from '../../helpers/paths.js';

test('golden instantid-pipeline: every recorded intermediate matches the basic pipeline', async () => {
  const r = await evaluateCase(golden('instantid-pipeline'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
  assert.ok(r.checks.length >= 31, `${r.checks.length} checks`);
});

test('golden instantid-pipeline-multicontrolnet: the _full pipeline without and with the mask', async () => {
  const r = await evaluateCase(golden('instantid-pipeline-multicontrolnet'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
  assert.ok(r.checks.some((k) => k.name.startsWith('maskon.')), 'the masked run is checked');
});

async function pipelineFor(c: GoldenCase): Promise<InstantIdPipeline> {
  const { parts, close } = await openGoldenInstantIdParts(c);
  try {
    return await InstantIdPipeline.fromParts(parts, { cacheDir: goldenCacheDir(), threads: 1 });
  } finally {
    close();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

let basicCase: GoldenCase;
let multiCase: GoldenCase;
let basic: InstantIdPipeline;
let multi: InstantIdPipeline;
let basicOptions: InstantIdRunOptions;
let multiOptions: InstantIdRunOptions;

before(async () => {
  basicCase = loadCase(golden('instantid-pipeline'));
  multiCase = loadCase(golden('instantid-pipeline-multicontrolnet'));
  basic = await pipelineFor(basicCase);
  multi = await pipelineFor(multiCase);
  basicOptions = caseRunOptions(basicCase);
  multiOptions = caseRunOptions(multiCase);
});

after(async () => {
  await basic?.dispose();
  await multi?.dispose();
  basicCase?.close();
  multiCase?.close();
});

test('ip_adapter_scale 0 and 0.8 give different images; the same call twice gives the same one', async () => {
  const a = await basic.run({ ...basicOptions, ipAdapterScale: 0.8 });
  const b = await basic.run({ ...basicOptions, ipAdapterScale: 0 });
  const again = await basic.run({ ...basicOptions, ipAdapterScale: 0.8 });
  assert.ok(maxDiff(a.images.data, b.images.data) > 1e-3, 'the IP-Adapter branch changes the image');
  assert.equal(maxDiff(a.images.data, again.images.data), 0);
  assert.deepEqual(a.images.dims, [1, 64, 64, 3]);
});

test('onProgress is called once per step, in order', async () => {
  const calls: [number, number][] = [];
  await basic.run({ ...basicOptions, steps: 4, onProgress: (s, n) => calls.push([s, n]) });
  assert.deepEqual(calls, [[1, 4], [2, 4], [3, 4], [4, 4]]);
});

test('aborting between steps stops the run with EngineError aborted', async () => {
  const ac = new AbortController();
  const steps: number[] = [];
  await assert.rejects(
    basic.run({ ...basicOptions, steps: 5, signal: ac.signal, onProgress: (s) => { steps.push(s); if (s === 2) ac.abort(); } }),
    (err: Error & { code?: string }) => err.code === 'aborted',
  );
  assert.deepEqual(steps, [1, 2], 'no step runs after the abort');
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(basic.run({ ...basicOptions, signal: pre.signal }), (err: Error & { code?: string }) => err.code === 'aborted');
});

test('a control mask covering the whole image equals no mask; a box equals the same box as an image', async () => {
  const { width: W, height: H } = multiOptions.kpsImage;
  const none = await multi.run(multiOptions);
  const full = await multi.run({ ...multiOptions, controlMask: { data: new Uint8Array(W * H).fill(255), width: W, height: H, channels: 1 } });
  assert.equal(maxDiff(none.images.data, full.images.data), 0);
  const box = multiCase.config.face_box_x1y1x2y2 as [number, number, number, number];
  const asImage = await multi.run({ ...multiOptions, controlMask: ioImage(multiCase, 'control_mask_uint8') });
  const asBox = await multi.run({ ...multiOptions, controlMask: { box } });
  assert.equal(maxDiff(asImage.images.data, asBox.images.data), 0);
  assert.ok(maxDiff(none.images.data, asBox.images.data) > 1e-4, 'the face box changes the image');
  // A box reaching past the image is clamped, not wrapped.
  const clamped = await multi.run({ ...multiOptions, controlMask: { box: [-10, -10, W + 10, H + 10] } });
  assert.equal(maxDiff(none.images.data, clamped.images.data), 0);
});

test('a ControlNet outside its guidance window is not run; scale 0, a null or a missing image are the same as never running it', async () => {
  const names = new Set<string>();
  const windowed = await multi.run({ ...multiOptions, controlGuidanceEnd: [1, 0.5], trace: (n) => names.add(n) });
  assert.ok(names.has('step0.net1.mid') && !names.has('step1.net1.mid') && !names.has('step2.net1.mid'));
  assert.ok(names.has('step2.net0.mid'));
  const off = await multi.run({ ...multiOptions, controlnetScales: [0] });
  const endZero = await multi.run({ ...multiOptions, controlGuidanceEnd: [1, 0] });
  const noImage = await multi.run({ ...multiOptions, controlImages: [null] });
  const leftOut = await multi.run({ ...multiOptions, controlImages: [] });
  assert.equal(maxDiff(off.images.data, endZero.images.data), 0);
  assert.equal(maxDiff(off.images.data, noImage.images.data), 0, 'a null control image turns its net off');
  assert.equal(maxDiff(off.images.data, leftOut.images.data), 0);
  assert.ok(maxDiff(windowed.images.data, off.images.data) > 0);
});

test('samples, seeds, 8-bit and PNG output', async () => {
  const { latents: _unused, ...seeded } = basicOptions;
  const one = await basic.run({ ...seeded, seed: 42, steps: 2 });
  const same = await basic.run({ ...seeded, seed: '42', steps: 2 });
  const two = await basic.run({ ...seeded, seed: 7, steps: 2, samples: 2 });
  assert.equal(one.seed, 42n);
  assert.equal(maxDiff(one.images.data, same.images.data), 0);
  assert.deepEqual(two.images.dims, [2, 64, 64, 3]);
  const rgb = resultRgb8(two, 1);
  assert.equal(rgb.length, 64 * 64 * 3);
  const meta = await sharp(await resultPng(two, 1)).metadata();
  assert.equal(meta.width, 64);
  assert.equal(meta.height, 64);
});

test('guidance 1 runs one batch (no uncond branch): cond text, face tokens and control image once', async () => {
  const dims = new Map<string, readonly number[]>();
  const r = await basic.run({ ...basicOptions, guidanceScale: 1, trace: (n, t) => dims.set(n, t.dims) });
  assert.deepEqual(dims.get('step0.noise_pred_uncond_text'), [1, 4, 8, 8]);
  assert.deepEqual(dims.get('prompt_image_emb'), [1, 4, 64]);
  assert.deepEqual(dims.get('control_image.0'), [1, 3, 64, 64]);
  assert.deepEqual(r.images.dims, [1, 64, 64, 3]);
});

test('bad requests fail with bad_request before anything runs', async () => {
  const code = (c: string) => (err: Error & { code?: string }) => err.code === c;
  const ran = new Set<string>();
  await assert.rejects(basic.run({ ...basicOptions, faceEmbedding: new Float32Array(5), trace: (n) => ran.add(n) }), code('bad_request'));
  assert.ok(!ran.has('prompt_embeds'), 'no net ran');
  await assert.rejects(multi.run({ ...multiOptions, controlImages: [multiOptions.kpsImage, multiOptions.kpsImage] }), code('bad_request'));
  await assert.rejects(multi.run({ ...multiOptions, controlGuidanceStart: [0, 0, 0] }), code('bad_request'));
  await assert.rejects(basic.run({ ...basicOptions, steps: 0 }), code('bad_request'));
  await assert.rejects(basic.run({ ...basicOptions, latents: new Float32Array(3) }), code('bad_request'));
  await assert.rejects(basic.run({ ...basicOptions, seed: -1 }), code('bad_seed'));
  await assert.rejects(basic.run({ ...basicOptions, scheduler: 'NoSuchScheduler' }), code('unknown_scheduler'));
  await assert.rejects(multi.run({ ...multiOptions, controlMask: { data: new Uint8Array(4), width: 2, height: 2, channels: 1 } }), code('bad_input'));
});
