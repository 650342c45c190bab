// SDXL text-to-image on the smoke model set (and on a single-file checkpoint): the images asked for,
// reproducible per seed, diffusers' initial latents, guidance, progress, aborting, and the errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { EngineError } from '../../../src/engine/errors.js';
import { SdxlPipeline, type SdxlGenerateRequest } from '../../../src/engine/pipelines/sdxl.js';
import { PhiloxGenerator } from '../../../src/engine/rng/philox.js';
import { TorchGenerator } from '../../../src/engine/rng/torch-cpu.js';
import { createScheduler } from '../../../src/engine/schedulers/index.js';
import { SDXL_SCHEDULER_CONFIG, writeSmokeModel } from '../../../src/engine/smoke.js';
import { run as generateCli } from '../../../src/cli/generate.js';
import { golden } from '../../helpers/paths.js';

const scratch = mkdtempSync(join(tmpdir(), 'likeness-sdxl-'));
const cacheDir = join(scratch, 'cache');
const smokeDir = join(scratch, 'smoke');
let pipe: SdxlPipeline;

before(async () => {
  await writeSmokeModel(smokeDir);
  pipe = await SdxlPipeline.load(smokeDir, { cacheDir, threads: 1 });
});
after(async () => {
  await pipe?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

const base: SdxlGenerateRequest = { prompt: 'a photo of a cat', steps: 2, seed: 42, width: 64, height: 64 };
const bytes = (r: { images: { png: Uint8Array }[] }): Buffer[] => r.images.map((i) => Buffer.from(i.png));

function isAborted(err: unknown): boolean {
  return err instanceof EngineError && err.code === 'aborted';
}

test('makes `samples` PNGs of the requested size', async () => {
  const r = await pipe.generate({ ...base, samples: 2, width: 80, height: 48 });
  assert.equal(r.images.length, 2);
  for (const image of r.images) {
    const meta = await sharp(image.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 80, 48, 3]);
    assert.deepEqual([image.width, image.height], [80, 48]);
  }
  assert.ok(!Buffer.from(r.images[0]!.png).equals(Buffer.from(r.images[1]!.png)), 'each sample has its own noise');
});

test('the same seed gives identical bytes; another seed other images', async () => {
  const a = await pipe.generate(base);
  const b = await pipe.generate({ ...base, seed: '42' });
  const c = await pipe.generate({ ...base, seed: 43n });
  assert.deepEqual(bytes(a), bytes(b));
  assert.notDeepEqual(bytes(a), bytes(c));
  assert.equal(a.seed, 42n);
});

test('the initial latents are torch.Generator().manual_seed(seed).randn([B, 4, H/8, W/8]) × init_noise_sigma', async () => {
  const r = await pipe.generate({ ...base, samples: 2, width: 64, height: 48, seed: '12345678901234', returnLatents: true });
  assert.deepEqual(r.latents!.shape, [2, 4, 6, 8]);
  const scheduler = createScheduler({ ...SDXL_SCHEDULER_CONFIG });
  scheduler.setTimesteps(2);
  const noise = new TorchGenerator(12345678901234n).randn([2, 4, 6, 8]);
  assert.deepEqual(r.latents!.initial, noise.map((v) => Math.fround(v * scheduler.initNoiseSigma)));
  const philox = await pipe.generate({ ...base, noise: 'cuda-philox', returnLatents: true });
  const expected = new PhiloxGenerator(42n).randn([1, 4, 8, 8]).map((v) => Math.fround(v * scheduler.initNoiseSigma));
  assert.deepEqual(philox.latents!.initial, expected);
});

test('progress is called once per step, counting to the total', async () => {
  const calls: [number, number][] = [];
  await pipe.generate({ ...base, steps: 3, onProgress: (s, n) => calls.push([s, n]) });
  assert.deepEqual(calls, [[1, 3], [2, 3], [3, 3]]);
});

test('an abort between steps stops the run with EngineError("aborted")', async () => {
  const controller = new AbortController();
  const steps: number[] = [];
  await assert.rejects(pipe.generate({
    ...base, steps: 4, signal: controller.signal,
    onProgress: (s) => { steps.push(s); if (s === 1) controller.abort(); },
  }), isAborted);
  assert.deepEqual(steps, [1]);
  await assert.rejects(pipe.generate({ ...base, signal: AbortSignal.abort() }), isAborted);
});

test('guidance ≤ 1 runs the positive prompt alone: the negative prompt then changes nothing', async () => {
  const plain = await pipe.generate({ ...base, guidanceScale: 1 });
  const withNegative = await pipe.generate({ ...base, guidanceScale: 1, negativePrompt: 'blurry' });
  const guided = await pipe.generate({ ...base, guidanceScale: 5, negativePrompt: 'blurry' });
  assert.deepEqual(bytes(plain), bytes(withNegative));
  assert.notDeepEqual(bytes(plain), bytes(guided));
});

test('other schedulers by name (an ancestral one included) are just as reproducible; an unknown name is refused', async () => {
  for (const scheduler of ['DPMSolverMultistepScheduler', 'EulerAncestralDiscreteScheduler', 'DDIMScheduler']) {
    const a = await pipe.generate({ ...base, scheduler });
    const b = await pipe.generate({ ...base, scheduler });
    assert.deepEqual(bytes(a), bytes(b), scheduler);
  }
  await assert.rejects(pipe.generate({ ...base, scheduler: 'Nope' }), (e: unknown) => e instanceof EngineError && e.code === 'unknown_scheduler');
});

test('long weighted prompts run in lpw mode (more than one 75-token chunk)', async () => {
  const prompt = `(a photo:1.3) of a [cat], ${'studio light, '.repeat(40)}`;
  const r = await pipe.generate({ ...base, prompt, negativePrompt: '(lowres:1.2), watermark', promptMode: 'lpw' });
  assert.equal(r.images.length, 1);
});

test('sizes that are not multiples of 8 and bad counts are refused before any work', async () => {
  const bad = (e: unknown): boolean => e instanceof EngineError && e.code === 'bad_request';
  await assert.rejects(pipe.generate({ ...base, width: 60 }), bad);
  await assert.rejects(pipe.generate({ ...base, steps: 0 }), bad);
  await assert.rejects(pipe.generate({ ...base, samples: 1.5 }), bad);
  await assert.rejects(pipe.generate({ ...base, seed: '-1' }), (e: unknown) => e instanceof EngineError && e.code === 'bad_seed');
});

test('the second load of a model comes from the compile cache', async () => {
  const again = await SdxlPipeline.load(smokeDir, { cacheDir, threads: 1 });
  try {
    assert.deepEqual(again.cacheHits, { text_encoder: true, text_encoder_2: true, unet: true });
    assert.deepEqual(bytes(await again.generate(base)), bytes(await pipe.generate(base)));
  } finally {
    await again.dispose();
  }
});

test('a single-file SGM checkpoint generates too, with the tokenizers from the model store', async () => {
  const checkpoint = join(golden('unet-sdxl-singlefile'), 'sd_xl_tiny.safetensors');
  await assert.rejects(SdxlPipeline.load(checkpoint, { cacheDir }),
    (e: unknown) => e instanceof EngineError && e.code === 'tokenizer_missing' && /tokenizer_2\/.*stable-diffusion-xl-base-1\.0/.test(e.message));
  const config = JSON.parse(readFileSync(join(golden('unet-sdxl-singlefile'), 'case.json'), 'utf8')).config;
  const single = await SdxlPipeline.load(checkpoint, {
    cacheDir, threads: 1, tokenizerDir: golden('instantid-pipeline'),
    // a toy checkpoint: what the shapes cannot tell (SDXL's values are assumed otherwise)
    overrides: { unet: { norm_num_groups: 4, attention_head_dim: config.unet.attention_head_dim }, vae: { norm_num_groups: 4 } },
  });
  try {
    const r = await single.generate({ ...base, prompt: 'a photo of a woman', negativePrompt: 'worst quality', samples: 2 });
    assert.deepEqual(r.images.map((i) => [i.width, i.height]), [[64, 64], [64, 64]]);
  } finally {
    await single.dispose();
  }
});

test('likeness generate writes the PNGs to --out', async () => {
  const out = join(scratch, 'out');
  const quiet = { log: console.log, write: process.stderr.write };
  console.log = () => undefined;
  process.stderr.write = () => true;
  let code: number;
  try {
    code = await generateCli(['--model', smokeDir, '--prompt', 'a cat', '--steps', '2', '--samples', '2', '--seed', '5',
      '--width', '64', '--height', '64', '--out', out, '--home', join(scratch, 'home'), '--threads', '1']);
  } finally {
    console.log = quiet.log;
    process.stderr.write = quiet.write;
  }
  assert.equal(code, 0);
  assert.deepEqual(readdirSync(out).sort(), ['likeness-5-0.png', 'likeness-5-1.png']);
  assert.ok(existsSync(join(scratch, 'home', 'cache', 'onnx')));
});
