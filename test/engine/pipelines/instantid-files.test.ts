// InstantIdPipeline.load from files as users have them: a diffusers SDXL folder (model_index.json,
// unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/), an IdentityNet
// folder, ip-adapter.bin, and an extra ControlNet folder holding only an fp16 file (or that file alone
// with its config beside it, as a catalog slot may hold it) — assembled here
// from the goldens' tiny parts (symlinks), and checked against the golden case's recorded image.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCase } from '../../../src/engine/golden/case.js';
import { caseRunOptions } from '../../../src/engine/golden/kinds/instantid_pipeline.js';
import { compareClose } from '../../../src/engine/golden/compare.js';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { InstantIdPipeline } from '../../../src/engine/pipelines/instantid.js';
import { golden } from '../../helpers/paths.js';
import { tempDir } from '../nets/fixtures.js';

const tmp = tempDir('likeness-instantid-files-');
after(() => tmp.remove());

function caseConfig(name: string): Record<string, unknown> {
  return (parsePythonJson(readFileSync(join(golden(name), 'case.json'), 'utf8')) as { config: Record<string, unknown> }).config;
}

/** A component folder: config.json plus the golden's weights under the given file name. */
function component(dir: string, config: unknown, weights: string, fileName: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  symlinkSync(weights, join(dir, fileName));
  return dir;
}

test('load(files): diffusers folder + IdentityNet folder + ip-adapter.bin + fp16-only ControlNet (folder or single file) reproduce the golden image', async () => {
  const c = loadCase(golden('instantid-pipeline-multicontrolnet'));
  try {
    const model = join(tmp.dir, 'sdxl');
    const unit = ['unet', 'vae', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'scheduler'];
    mkdirSync(model, { recursive: true });
    writeFileSync(join(model, 'model_index.json'), JSON.stringify({
      _class_name: 'StableDiffusionXLPipeline', force_zeros_for_empty_prompt: true,
      ...Object.fromEntries(unit.map((u) => [u, ['diffusers', u]])),
    }));
    component(join(model, 'unet'), caseConfig('unet-sdxl'), join(golden('unet-sdxl'), 'weights.safetensors'), 'diffusion_pytorch_model.safetensors');
    component(join(model, 'vae'), caseConfig('vae'), join(golden('vae'), 'weights.safetensors'), 'diffusion_pytorch_model.safetensors');
    component(join(model, 'text_encoder'), caseConfig('clip-text-l'), join(golden('clip-text-l'), 'weights.safetensors'), 'model.safetensors');
    component(join(model, 'text_encoder_2'), caseConfig('clip-text-g'), join(golden('clip-text-g'), 'weights.safetensors'), 'model.safetensors');
    for (const t of ['tokenizer', 'tokenizer_2']) symlinkSync(join(golden('instantid-pipeline'), t), join(model, t));
    mkdirSync(join(model, 'scheduler'));
    writeFileSync(join(model, 'scheduler', 'scheduler_config.json'), JSON.stringify(c.config.scheduler));
    const identityNet = component(join(tmp.dir, 'ControlNetModel'), caseConfig('controlnet'), join(golden('controlnet'), 'weights.safetensors'), 'diffusion_pytorch_model.safetensors');
    const canny = component(join(tmp.dir, 'controlnet-canny'), c.config.controlnet2, join(c.dir, 'controlnet2.fp16.safetensors'), 'diffusion_pytorch_model.fp16.safetensors');
    // The same ControlNet as a catalog single file: the weights alone, its config as <name>.json beside them.
    const single = join(tmp.dir, 'controlnet-canny-single.safetensors');
    symlinkSync(join(c.dir, 'controlnet2.fp16.safetensors'), single);
    writeFileSync(join(tmp.dir, 'controlnet-canny-single.json'), JSON.stringify(c.config.controlnet2));
    const resampler = c.config.resampler as { heads: number; dim_head: number };

    for (const extra of [canny, single]) {
      const pipeline = await InstantIdPipeline.load({
        model, identityNet, controlNets: [extra],
        ipAdapter: join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin'),
        resampler: { heads: resampler.heads, dimHead: resampler.dim_head },
      }, { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
      try {
        assert.equal(pipeline.extraControlNets, 1);
        assert.equal(pipeline.embeddingDim, 24);
        const r = await pipeline.run(caseRunOptions(c));
        const check = compareClose('image', r.images.data, c.io().readFloat32('image'), c.tolerance);
        assert.ok(check.pass, `${extra}: image max-abs ${check.maxAbsError} > ${check.allowed}`);
      } finally {
        await pipeline.dispose();
      }
    }
  } finally {
    c.close();
  }
});

test('load(files): missing tokenizers and a missing ip-adapter.bin are reported with what to install', async () => {
  const model = join(tmp.dir, 'no-tokenizer');
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, 'model_index.json'), JSON.stringify({
    _class_name: 'StableDiffusionXLPipeline',
    ...Object.fromEntries(['unet', 'vae', 'text_encoder', 'text_encoder_2'].map((u) => [u, ['diffusers', u]])),
  }));
  component(join(model, 'unet'), caseConfig('unet-sdxl'), join(golden('unet-sdxl'), 'weights.safetensors'), 'diffusion_pytorch_model.safetensors');
  component(join(model, 'vae'), caseConfig('vae'), join(golden('vae'), 'weights.safetensors'), 'diffusion_pytorch_model.safetensors');
  component(join(model, 'text_encoder'), caseConfig('clip-text-l'), join(golden('clip-text-l'), 'weights.safetensors'), 'model.safetensors');
  component(join(model, 'text_encoder_2'), caseConfig('clip-text-g'), join(golden('clip-text-g'), 'weights.safetensors'), 'model.safetensors');
  await assert.rejects(
    InstantIdPipeline.load({ model, identityNet: join(tmp.dir, 'nowhere'), ipAdapter: join(tmp.dir, 'nowhere.bin') }, { cacheDir: join(tmp.dir, 'cache') }),
    (err: Error & { code?: string }) => err.code === 'tokenizer_missing' && /tokenizer_2/.test(err.message),
  );
  for (const t of ['tokenizer', 'tokenizer_2']) symlinkSync(join(golden('instantid-pipeline'), t), join(model, t));
  await assert.rejects(
    InstantIdPipeline.load({ model, identityNet: join(tmp.dir, 'nowhere'), ipAdapter: join(tmp.dir, 'nowhere.bin') }, { cacheDir: join(tmp.dir, 'cache') }),
    (err: Error & { code?: string }) => err.code === 'model_missing' && /nowhere\.bin/.test(err.message),
  );
});
