// The InstantID runner's preprocess on its own (no service): which files it picks, the errors a user
// or operator can act on, pose photos and several faces; plus the validation limits and the pipeline
// cache key. The full path through the service is test/service/instantid-e2e.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMOKE_LORA_FILE, writeSmokeInstantIdSet } from '../../src/engine/smoke-instantid.js';
import type { LoraFile } from '../../src/engine/formats/lora.js';
import { TaskInputError, type InputFile, type RunContext } from '../../src/service/runner.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import { withEngineLimits } from '../../src/tools/instantid/availability.js';
import { pipelineKey } from '../../src/tools/instantid/pipelines.js';
import { InstantIdRunner } from '../../src/tools/instantid-runner.js';
import type { RunParams } from '../../src/tools/types.js';
import { validateRun } from '../../src/tools/validate.js';
import { asset } from '../helpers/paths.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-instantid-runner-'));
const empty = mkdtempSync(join(tmpdir(), 'likeness-instantid-empty-'));
let runner: InstantIdRunner;
before(async () => {
  await writeSmokeInstantIdSet(home, { detector: asset('models/det_500m.onnx') });
  runner = new InstantIdRunner({ home, threads: 1 });
});
after(async () => {
  await runner.dispose();
  rmSync(home, { recursive: true, force: true });
  rmSync(empty, { recursive: true, force: true });
});

function file(id: string, name: string): InputFile {
  const path = asset(`faces/${name}`);
  return { id, url: '', bytes: readFileSync(path), contentType: name.endsWith('.png') ? 'image/png' : 'image/jpeg', path };
}

let taskId = 1;
function context(body: Record<string, unknown>, images: Record<string, string>, projectId = 1): RunContext & { lines: string[] } {
  const files = Object.fromEntries(Object.entries(images).map(([id, name]) => [id, { filename: name, contentType: 'image/png', size: 1 }]));
  const v = validateRun(instantIdControlnetLora, { prompt: 'a portrait', ...body }, files);
  assert.ok(v.ok, JSON.stringify(v));
  const lines: string[] = [];
  return {
    taskId: taskId++, uuid: 'u', projectId, params: v.params as RunParams, signal: new AbortController().signal, lines,
    inputs: Object.fromEntries(Object.entries(images).map(([id, name]) => [id, file(id, name)])),
    log: (l) => lines.push(l), progress: () => undefined, writeOutput: async () => undefined,
  };
}

async function refused(r: InstantIdRunner, ctx: RunContext, pattern: RegExp): Promise<void> {
  await assert.rejects(r.preprocess(ctx), (err: Error) => {
    assert.ok(err instanceof TaskInputError, `${err.name}: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('the face photo sets the size (resize_img, long side 1024); several faces: the largest, and the notes say so', async () => {
  const one = context({}, { inputImage: 'astronaut.png' });
  await runner.preprocess(one);
  assert.ok(one.lines.some((l) => l.startsWith('output 1024×1024')), one.lines.join('\n'));
  const group = context({ width: 128, height: 64, selectedControlnetModel: [] }, { inputImage: 'solvay_1927_1024w.jpg' });
  await runner.preprocess(group);
  assert.ok(group.lines.some((l) => /inputImage: 29 faces found; used the largest/.test(l)), group.lines.join('\n'));
  assert.ok(group.lines.some((l) => l.startsWith('output 128×64')));
});

test('a pose photo supplies the size; one overridden side follows its aspect ratio', async () => {
  const ctx = context({ selectedControlnetModel: [] }, { inputImage: 'astronaut.png', inputPoseImage: 'fullbody_standing.jpg' });
  await runner.preprocess(ctx);
  assert.ok(ctx.lines.some((l) => l.startsWith('output 512×1024')), ctx.lines.join('\n'));
  const narrow = context({ width: 64, selectedControlnetModel: [] }, { inputImage: 'astronaut.png', inputPoseImage: 'fullbody_standing.jpg' });
  await runner.preprocess(narrow);
  assert.ok(narrow.lines.some((l) => l.startsWith('output 64×128')), narrow.lines.join('\n'));
});

test('a photo without a face is a TaskInputError with the actionable message', async () => {
  await refused(runner, context({}, { inputImage: 'rocket_noface.jpg' }), /^no face detected in inputImage: use a photo with one clearly visible face/);
  // The size the user sent (640×427), not only the resized one the detector saw.
  await refused(runner, context({}, { inputImage: 'rocket_noface.jpg' }), /The photo you sent is 640×427; faces are looked for in it resized to \d+×\d+\./);
});

test('missing models are named with how to install them and their licence', async () => {
  const bare = new InstantIdRunner({ home: empty, threads: 1 });
  try {
    await refused(bare, context({}, { inputImage: 'astronaut.png' }), /no SDXL checkpoint was selected.*likeness models smoke/i);
  } finally {
    await bare.dispose();
  }
  const noDetector = new InstantIdRunner({ home, threads: 1, detector: join(empty, 'antelopev2', 'scrfd_10g_bnkps.onnx') });
  try {
    await refused(noDetector, context({}, { inputImage: 'astronaut.png' }), /scrfd_10g_bnkps\.onnx.*antelopev2.*non-commercial/s);
  } finally {
    await noDetector.dispose();
  }
  const ip = join(home, 'models', 'smoke', 'instantid', 'ip-adapter.safetensors');
  renameSync(ip, `${ip}.away`);
  try {
    await refused(runner, context({}, { inputImage: 'astronaut.png' }), /ip-adapter\.bin is not installed.*non-commercial/);
  } finally {
    renameSync(`${ip}.away`, ip);
  }
});

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a private LoRA or checkpoint is read from the task\'s project only; another project is told it has none, naming no path', async () => {
  const loras = join(home, 'models', 'loras', 'private', '1');
  mkdirSync(loras, { recursive: true });
  copyFileSync(join(home, SMOKE_LORA_FILE), join(loras, 'mine.safetensors'));
  const mine = context({ selectedLoraModelPrivate: 'mine' }, { inputImage: 'astronaut.png' }, 1);
  await runner.preprocess(mine);
  assert.ok(mine.lines.some((l) => /^selectedLoraModelPrivate mine: \d+ layers patched/.test(l)), mine.lines.join('\n'));
  const lora = "Request parameter [selectedLoraModelPrivate] mine is not a private LoRA of this project: the server's operator adds it with " +
    '`likeness models private add --project <your project> FILE`';
  await refused(runner, context({ selectedLoraModelPrivate: 'mine' }, { inputImage: 'astronaut.png' }, 2), new RegExp(`^${escape(lora)}$`));

  const checkpoints = join(home, 'models', 'checkpoints', 'private', '1');
  mkdirSync(checkpoints, { recursive: true });
  symlinkSync(join(home, 'models', 'smoke'), join(checkpoints, 'toy'), 'dir');
  // Project 1's checkpoint is found (it is no smoke set by its path, so the real InstantID parts are asked for next).
  await refused(runner, context({ selectedModelPrivate: 'toy' }, { inputImage: 'astronaut.png' }, 1), /IdentityNet is not installed/);
  await refused(runner, context({ selectedModelPrivate: 'toy' }, { inputImage: 'astronaut.png' }, 2),
    /^Request parameter \[selectedModelPrivate\] toy is not a private checkpoint of this project: the server's operator adds it/);
});

test('validation passes every ControlNet with a preprocessor (458, 455, 454) on to the installed-model check', () => {
  const asked: string[] = [];
  const check = withEngineLimits((input, value) => { asked.push(`${input}=${value}`); return undefined; });
  for (const id of ['458', '455', '454']) assert.equal(check('selectedControlnetModel', id), undefined);
  assert.equal(check('selectedLoraModel', '622'), undefined);
  assert.deepEqual(asked, ['selectedControlnetModel=458', 'selectedControlnetModel=455', 'selectedControlnetModel=454', 'selectedLoraModel=622']);
});

test('openpose: the pose map is computed from the pose photo and sized to the output; without the body model, what to download', async () => {
  const ctx = context({ width: 64, selectedControlnetModel: ['458'] }, { inputImage: 'astronaut.png', inputPoseImage: 'fullbody_standing.jpg' });
  await runner.preprocess(ctx);
  assert.match(ctx.lines.join('\n'), /control map openpose \(ControlNet 458\) computed from inputPoseImage/);
  const file = join(home, 'models', 'annotators', 'body_pose_model.pth');
  renameSync(file, `${file}.away`);
  try {
    await refused(runner, context({ width: 64, height: 64, selectedControlnetModel: ['458'] }, { inputImage: 'astronaut.png' }),
      /OpenPose body model.*not installed: download body_pose_model\.pth.*models\/annotators\/body_pose_model\.pth.*non-commercial/);
  } finally {
    renameSync(`${file}.away`, file);
  }
});

test('depth + canny: each map is computed from the pose photo and sized to the output; debugoutput says so', async () => {
  const ctx = context({ width: 64, selectedControlnetModel: ['455', '454'] }, { inputImage: 'astronaut.png', inputPoseImage: 'fullbody_standing.jpg' });
  await runner.preprocess(ctx);
  const log = ctx.lines.join('\n');
  assert.match(log, /depth preprocessor: the smoke set's RANDOM weights/);
  assert.match(log, /control map depth \(ControlNet 455\) computed from inputPoseImage \(resized to 512×1024\), resized to 64×128/);
  assert.match(log, /control map canny \(ControlNet 454\) computed from inputPoseImage/);
  const face = context({ width: 64, height: 64, selectedControlnetModel: ['455'] }, { inputImage: 'astronaut.png' });
  await runner.preprocess(face);
  assert.match(face.lines.join('\n'), /control map depth \(ControlNet 455\) computed from inputImage/);
});

test('depth without Depth Anything installed: which files, from where, where to put them, the licence', async () => {
  const dir = join(home, 'models', 'smoke', 'depth-anything');
  renameSync(dir, `${dir}.away`);
  try {
    await refused(runner, context({ width: 64, height: 64, selectedControlnetModel: ['455'] }, { inputImage: 'astronaut.png' }),
      /Depth Anything.*not installed: download config\.json and model\.safetensors of LiheYoung\/depth-anything-small-hf.*models\/depth-anything\/config\.json.*Licence: Apache-2\.0/);
  } finally {
    renameSync(`${dir}.away`, dir);
  }
});

test('the warm-pipeline key changes with the LoRA set and scales, not with a LoRA at scale 0', () => {
  const files = { model: '/m', identityNet: '/i', ipAdapter: '/p', controlNets: ['/c'] };
  const lora = (id: string): LoraFile => ({ id } as unknown as LoraFile);
  const base = pipelineKey({ files, loras: [] });
  assert.equal(pipelineKey({ files, loras: [{ lora: lora('a'), scale: 0 }] }), base);
  const a7 = pipelineKey({ files, loras: [{ lora: lora('a'), scale: 0.7 }] });
  assert.notEqual(a7, base);
  assert.notEqual(pipelineKey({ files, loras: [{ lora: lora('a'), scale: 0.8 }] }), a7);
  assert.notEqual(pipelineKey({ files: { ...files, controlNets: [] }, loras: [] }), base);
});

test('the memory plan: a task over LIKENESS_MEMORY_LIMIT is refused in preprocess naming what to lower; one that fits logs its plan', async () => {
  const ctx = context({ width: 512, height: 512, selectedControlnetModel: [] }, { inputImage: 'astronaut.png' });
  await runner.preprocess(ctx);
  const line = ctx.lines.find((l) => l.startsWith('memory plan:'));
  assert.match(line ?? '', /^memory plan: about \d+\.\d GB at peak \(limit \d+\.\d GB\)$/, ctx.lines.join('\n'));
  const small = new InstantIdRunner({ home, threads: 1, memoryLimit: 450 * 2 ** 20 });
  try {
    await refused(small, context({ width: 1024, height: 1024, samples: 4, selectedControlnetModel: [] }, { inputImage: 'astronaut.png' }),
      /needs about \d+\.\d GB of memory, over the limit of 0\.4 GB \(LIKENESS_MEMORY_LIMIT.*The biggest you can change is (UNet activations|VAE decode).*lower width × height \(1024×1024\) or samples \(4\)/);
  } finally {
    await small.dispose();
  }
});
