// diffusers model folders: a tiny SDXL folder is built in a temp dir from the golden weights (one
// component fp16-only, one sharded) and must open into the same components as the single-file
// checkpoint; missing parts and non-SDXL folders give clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { loadCase } from '../../../src/engine/golden/case.js';
import { openDiffusersFolder, openSdxlModel } from '../../../src/engine/formats/diffusers-folder.js';
import { openSingleFile } from '../../../src/engine/formats/single-file.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { toFloat16 } from '../../../src/engine/formats/dtype.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/engine/formats/safetensors-write.js';
import { loadVaeDecoder } from '../../../src/engine/nets/vae.js';
import { golden } from '../../helpers/paths.js';

const CASES = { unet: 'unet-sdxl', vae: 'vae', text_encoder: 'clip-text-l', text_encoder_2: 'clip-text-g' } as const;
type Component = keyof typeof CASES;
const singleFile = loadCase(golden('unet-sdxl-singlefile')).file('sd_xl_tiny.safetensors');

const isEngineError = (code: string, pattern: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof EngineError, String(e));
  assert.equal(e.code, code, e.message);
  assert.match(e.message, pattern);
  return true;
};

/** The golden weights of `component` as tensors to write, optionally F16 and renamed. */
function tensorsOf(component: Component, options: { f16?: boolean; rename?: (n: string) => string } = {}): Record<string, TensorToWrite> {
  const file = SafetensorsFile.open(loadCase(golden(CASES[component])).file('weights.safetensors'));
  try {
    return Object.fromEntries(file.names().map((n) => {
      const values = file.readFloat32(n);
      const t: TensorToWrite = options.f16 ? { dtype: 'F16', shape: file.info(n).shape, data: toFloat16(values) } : { dtype: 'F32', shape: file.info(n).shape, data: values };
      return [options.rename ? options.rename(n) : n, t];
    }));
  } finally {
    file.close();
  }
}

/**
 * unet/diffusion_pytorch_model.safetensors, vae/diffusion_pytorch_model.fp16.safetensors only,
 * text_encoder/model.safetensors, text_encoder_2 in two shards with model.safetensors.index.json.
 */
async function buildFolder(dir: string): Promise<void> {
  const index = {
    _class_name: 'StableDiffusionXLPipeline', _diffusers_version: '0.30.3', force_zeros_for_empty_prompt: true,
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
    text_encoder: ['transformers', 'CLIPTextModel'], text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'], tokenizer_2: ['transformers', 'CLIPTokenizer'], scheduler: ['diffusers', 'EulerDiscreteScheduler'],
  };
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index));
  for (const [component, name] of Object.entries(CASES)) {
    mkdirSync(join(dir, component));
    writeFileSync(join(dir, component, 'config.json'), JSON.stringify(loadCase(golden(name)).config));
  }
  copyFileSync(loadCase(golden('unet-sdxl')).file('weights.safetensors'), join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
  await writeSafetensors(join(dir, 'vae', 'diffusion_pytorch_model.fp16.safetensors'), tensorsOf('vae', { f16: true }));
  copyFileSync(loadCase(golden('clip-text-l')).file('weights.safetensors'), join(dir, 'text_encoder', 'model.safetensors'));
  const te2 = Object.entries(tensorsOf('text_encoder_2'));
  const half = Math.ceil(te2.length / 2);
  const shards = [te2.slice(0, half), te2.slice(half)];
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, 'text_encoder_2', file), Object.fromEntries(shard));
    for (const [n] of shard) weightMap[n] = file;
  }
  writeFileSync(join(dir, 'text_encoder_2', 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const tokenizers = loadCase(golden('instantid-pipeline')).dir;
  cpSync(join(tokenizers, 'tokenizer'), join(dir, 'tokenizer'), { recursive: true });
  cpSync(join(tokenizers, 'tokenizer_2'), join(dir, 'tokenizer_2'), { recursive: true });
  mkdirSync(join(dir, 'scheduler'));
  writeFileSync(join(dir, 'scheduler', 'scheduler_config.json'), '{"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "lambda_min_clipped": -Infinity}');
}

async function withFolder(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-diffusers-'));
  try {
    await buildFolder(dir);
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a diffusers folder opens into the same four components as the single-file checkpoint (fp16-only and sharded parts too)', async () => {
  await withFolder((dir) => {
    const folder = openDiffusersFolder(dir);
    const single = openSingleFile(singleFile);
    try {
      for (const c of Object.keys(CASES) as Component[]) {
        assert.deepEqual(folder[c].weights.names().sort(), single[c].weights.names().sort(), c);
        for (const n of folder[c].weights.names()) assert.deepEqual(folder[c].weights.readFloat32(n), single[c].weights.readFloat32(n), n);
        assert.deepEqual(folder[c].config, loadCase(golden(CASES[c])).config);
        assert.deepEqual(folder[c].assumed, []);
      }
      assert.equal(folder.vae.weights.info('decoder.conv_in.weight').dtype, 'F16');
    } finally {
      folder.close();
      single.close();
    }
  });
});

test('tokenizer folders and the scheduler config come along; a single file has neither', async () => {
  await withFolder((dir) => {
    const folder = openDiffusersFolder(dir);
    const single = openSingleFile(singleFile);
    try {
      assert.equal(folder.tokenizer, join(dir, 'tokenizer'));
      assert.equal(folder.tokenizer_2, join(dir, 'tokenizer_2'));
      assert.equal(folder.scheduler?.lambda_min_clipped, -Infinity);
      assert.equal(single.tokenizer, undefined);
      assert.equal(single.scheduler, undefined);
    } finally {
      folder.close();
      single.close();
    }
  });
});

test('the VAE decodes identically from the folder and from the single-file checkpoint', async () => {
  await withFolder(async (dir) => {
    const latent = { dtype: 'float32' as const, dims: [1, 4, 3, 3], data: Float32Array.from({ length: 36 }, (_, i) => Math.sin(i)) };
    const images: Float32Array[] = [];
    // The tiny VAE uses 4 norm groups, which its weights cannot tell (SDXL's 32 is assumed).
    for (const model of [openSdxlModel(dir), openSdxlModel(singleFile, { overrides: { vae: { norm_num_groups: 4 } } })]) {
      const decoder = await loadVaeDecoder(model.vae, { intraOpThreads: 1 });
      try {
        images.push((await decoder.decode(latent)).data);
      } finally {
        await decoder.dispose();
        model.close();
      }
    }
    assert.deepEqual(images[0], images[1]);
  });
});

test('full-precision weights are preferred unless the fp16 variant is asked for', async () => {
  await withFolder(async (dir) => {
    await writeSafetensors(join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), tensorsOf('vae'));
    const full = openDiffusersFolder(dir);
    const fp16 = openDiffusersFolder(dir, { variant: 'fp16' });
    try {
      assert.equal(full.vae.weights.info('decoder.conv_in.weight').dtype, 'F32');
      assert.equal(fp16.vae.weights.info('decoder.conv_in.weight').dtype, 'F16');
      assert.equal(fp16.unet.weights.info('conv_in.weight').dtype, 'F32'); // no fp16 file there: falls back
    } finally {
      full.close();
      fp16.close();
    }
  });
});

test('old diffusers VAE attention names (query, key, value, proj_attn) are read as to_q, to_k, to_v, to_out.0', async () => {
  await withFolder(async (dir) => {
    const legacy = (n: string): string => n.replace(/\.to_q\./, '.query.').replace(/\.to_k\./, '.key.').replace(/\.to_v\./, '.value.').replace(/\.to_out\.0\./, '.proj_attn.');
    rmSync(join(dir, 'vae', 'diffusion_pytorch_model.fp16.safetensors'));
    await writeSafetensors(join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), tensorsOf('vae', { rename: legacy }));
    const model = openDiffusersFolder(dir);
    try {
      assert.ok(model.vae.weights.has('encoder.mid_block.attentions.0.to_out.0.weight'));
      assert.ok(!model.vae.weights.names().some((n) => /\.(query|key|value|proj_attn)\./.test(n)));
    } finally {
      model.close();
    }
  });
});

test('a missing component is named', async () => {
  await withFolder((dir) => {
    rmSync(join(dir, 'text_encoder_2'), { recursive: true });
    assert.throws(() => openDiffusersFolder(dir), isEngineError('missing_component', /lacks text_encoder_2\//));
  });
});

test('a component folder without weights says which files were looked for', async () => {
  await withFolder((dir) => {
    rmSync(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
    assert.throws(() => openDiffusersFolder(dir), isEngineError('missing_component', /unet has no weights \(looked for diffusion_pytorch_model/));
  });
});

test('a shard index naming a shard that is not there is an error', async () => {
  await withFolder((dir) => {
    renameSync(join(dir, 'text_encoder_2', 'model-00002-of-00002.safetensors'), join(dir, 'text_encoder_2', 'elsewhere.safetensors'));
    assert.throws(() => openDiffusersFolder(dir), isEngineError('missing_file', /model-00002-of-00002\.safetensors/));
  });
});

test('an SD 1.5 folder is refused as not SDXL, and a folder without model_index.json is not a model folder', async () => {
  await withFolder((dir) => {
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify({
      _class_name: 'StableDiffusionPipeline', unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
      text_encoder: ['transformers', 'CLIPTextModel'], safety_checker: [null, null],
    }));
    assert.throws(() => openDiffusersFolder(dir), isEngineError('unsupported_checkpoint', /StableDiffusionPipeline with one text encoder.*SDXL/));
    rmSync(join(dir, 'model_index.json'));
    assert.throws(() => openDiffusersFolder(dir), isEngineError('bad_model_folder', /no model_index\.json/));
    assert.throws(() => openSdxlModel(join(dir, 'nothing-here')), isEngineError('missing_file', /does not exist/));
  });
});
