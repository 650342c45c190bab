// A ControlNet saved as one weights file: its config from a JSON beside it, else read back from the
// diffusers-named shapes (SDXL's conventions for what shapes cannot tell); original-layout files refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseControlNetConfig } from '../../../src/engine/nets/unet-config.js';
import { controlNetWeightShapes } from '../../../src/engine/nets/unet-shapes.js';
import { controlNetConfigAt, inferControlNetConfig } from '../../../src/engine/pipelines/instantid-controlnet-file.js';
import { smokeControlNetConfig, writeSmokeInstantIdSet } from '../../../src/engine/smoke-instantid.js';
import type { TensorSource } from '../../../src/engine/formats/keymaps/source.js';

/** diffusers/controlnet-depth-sdxl-1.0's config.json, the fields that shape the net. */
const SDXL_DEPTH = {
  _class_name: 'ControlNetModel', in_channels: 4, conditioning_channels: 3, conditioning_embedding_out_channels: [16, 32, 96, 256],
  block_out_channels: [320, 640, 1280], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn', layers_per_block: 2, transformer_layers_per_block: [1, 2, 10], attention_head_dim: [5, 10, 20],
  cross_attention_dim: 2048, use_linear_projection: true, norm_num_groups: 32, addition_embed_type: 'text_time',
  addition_time_embed_dim: 256, projection_class_embeddings_input_dim: 2816,
};

function shapesOnly(shapes: ReadonlyMap<string, readonly number[]>): TensorSource {
  const none = (): never => { throw new Error('no data'); };
  return { has: (n) => shapes.has(n), info: (n) => ({ dtype: 'F32', shape: [...shapes.get(n)!] }), read: none, readFloat32: none };
}

test('an SDXL ControlNet file alone: the config read back from its shapes is diffusers\' own', () => {
  const shapes = controlNetWeightShapes(parseControlNetConfig(SDXL_DEPTH));
  const { config, assumed } = inferControlNetConfig(shapesOnly(shapes), 'depth.safetensors');
  assert.deepEqual(parseControlNetConfig(config), parseControlNetConfig(SDXL_DEPTH));
  assert.ok(assumed.some((a) => /attention_head_dim/.test(a)) && assumed.some((a) => /addition_time_embed_dim/.test(a)));
  // A lighter variant with other transformer depths and channels is read as it is.
  const small = { ...SDXL_DEPTH, block_out_channels: [320, 640, 960], attention_head_dim: [5, 10, 15], transformer_layers_per_block: [1, 1, 4] };
  const inferred = inferControlNetConfig(shapesOnly(controlNetWeightShapes(parseControlNetConfig(small))), 'small.safetensors').config;
  assert.deepEqual(parseControlNetConfig(inferred), parseControlNetConfig(small));
});

test('original-layout files are refused with what to save instead', () => {
  const shapes = new Map([['control_model.input_blocks.0.0.weight', [320, 4, 3, 3]]]);
  assert.throws(() => inferControlNetConfig(shapesOnly(shapes), 'x.safetensors'), /not a diffusers ControlNet.*original \(A1111\) layout.*config\.json and diffusion_pytorch_model\.safetensors/);
});

test('a file with <name>.json beside it uses that config; a folder its config.json', async () => {
  const home = mkdtempSync(join(tmpdir(), 'likeness-cn-file-'));
  try {
    await writeSmokeInstantIdSet(home, { catalog: true });
    const folder = join(home, 'models', 'controlnet', 'controlnet-depth-sdxl-1.0');
    const file = join(home, 'models', 'controlnet', 'depth-alone.safetensors');
    copyFileSync(join(folder, 'diffusion_pytorch_model.safetensors'), file);
    assert.throws(() => controlNetConfigAt(file), /add_embedding takes .* save its config\.json beside it as depth-alone\.json/);
    writeFileSync(join(home, 'models', 'controlnet', 'depth-alone.json'), JSON.stringify(smokeControlNetConfig()));
    assert.deepEqual(controlNetConfigAt(file), smokeControlNetConfig());
    assert.deepEqual(controlNetConfigAt(folder), smokeControlNetConfig());
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
