// Target tables: which modules a LoRA may patch, derived from configs, and the names files use for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadCase } from '../../../src/engine/golden/case.js';
import { SDXL_BASE_UNET, caseConfig } from './helpers.js';
import {
  clipTextModules, flat, loraTargetsFromConfigs, modulesOfWeights, sgmModuleName, unetLayout, unetModules, unetTargetTable,
} from '../../../src/engine/formats/lora-keymap.js';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { golden } from '../../helpers/paths.js';

const config = caseConfig;

function sameModules(fromConfig: Map<string, number[]>, fromWeights: Map<string, number[]>): void {
  assert.deepEqual([...fromConfig.keys()].sort(), [...fromWeights.keys()].sort());
  for (const [name, shape] of fromConfig) assert.deepEqual(shape, fromWeights.get(name), name);
}

test('the UNet modules derived from the config are exactly the Linear and Conv weights of the model, with their shapes', () => {
  const weights = openWeights(join(golden('unet-sdxl'), 'weights.safetensors'));
  try {
    sameModules(unetModules(config('unet-sdxl')), modulesOfWeights(weights));
  } finally {
    weights.close();
  }
});

test('the CLIP modules derived from the config are the attention and MLP Linears (plus the projection of the second encoder)', () => {
  for (const [name, projection] of [['clip-text-l', false], ['clip-text-g', true]] as const) {
    const weights = openWeights(join(golden(name), 'weights.safetensors'));
    try {
      const fromWeights = modulesOfWeights(weights);
      sameModules(clipTextModules(config(name), projection), fromWeights);
    } finally {
      weights.close();
    }
  }
});

test('SDXL base has the 722 transformer Linears kohya sd-scripts trains, and its cross-attention keys take the 2048-wide context', () => {
  const modules = unetModules(SDXL_BASE_UNET);
  assert.equal([...modules.keys()].filter((m) => /attentions\.\d+\./.test(m)).length, 722);
  assert.deepEqual(modules.get('mid_block.attentions.0.transformer_blocks.9.attn2.to_k'), [1280, 2048]);
  assert.deepEqual(modules.get('down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj'), [5120, 640]);
  assert.deepEqual(modules.get('up_blocks.0.resnets.2.conv_shortcut'), [1280, 1920, 1, 1]);
});

test('SGM block names follow the block arithmetic of the config (SDXL base)', () => {
  const layout = unetLayout(SDXL_BASE_UNET);
  const cases: [string, string][] = [
    ['down_blocks.0.resnets.0.conv1', 'input_blocks.1.0.in_layers.2'],
    ['down_blocks.0.downsamplers.0.conv', 'input_blocks.3.0.op'],
    ['down_blocks.1.resnets.0.conv_shortcut', 'input_blocks.4.0.skip_connection'],
    ['down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_out.0', 'input_blocks.5.1.transformer_blocks.1.attn2.to_out.0'],
    ['down_blocks.1.downsamplers.0.conv', 'input_blocks.6.0.op'],
    ['down_blocks.2.attentions.0.transformer_blocks.9.ff.net.2', 'input_blocks.7.1.transformer_blocks.9.ff.net.2'],
    ['mid_block.resnets.0.time_emb_proj', 'middle_block.0.emb_layers.1'],
    ['mid_block.attentions.0.proj_in', 'middle_block.1.proj_in'],
    ['mid_block.resnets.1.conv2', 'middle_block.2.out_layers.3'],
    ['up_blocks.0.attentions.2.proj_out', 'output_blocks.2.1.proj_out'],
    ['up_blocks.0.upsamplers.0.conv', 'output_blocks.2.2.conv'],
    ['up_blocks.1.upsamplers.0.conv', 'output_blocks.5.2.conv'],
    ['up_blocks.2.resnets.2.conv1', 'output_blocks.8.0.in_layers.2'],
    ['time_embedding.linear_1', 'time_embed.0'],
    ['add_embedding.linear_2', 'label_emb.0.2'],
    ['conv_in', 'input_blocks.0.0'],
    ['conv_out', 'out.2'],
  ];
  for (const [diffusers, sgm] of cases) assert.equal(sgmModuleName(diffusers, layout), sgm, diffusers);
});

test('an up block without attentions has its upsampler at .1.conv', () => {
  const layout = unetLayout({ ...SDXL_BASE_UNET, up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'] });
  assert.equal(sgmModuleName('up_blocks.0.upsamplers.0.conv', layout), 'output_blocks.2.1.conv');
});

test('every module is reachable under its flat diffusers name and its flat SGM name, and no two modules share an alias', () => {
  const table = unetTargetTable(SDXL_BASE_UNET);
  const layout = unetLayout(SDXL_BASE_UNET);
  for (const module of table.modules.keys()) {
    assert.equal(table.aliases.get(flat(module)), module);
    assert.equal(table.aliases.get(flat(sgmModuleName(module, layout)!)), module);
  }
  assert.equal(table.aliases.size, table.modules.size * 2);
});

test('the golden case\'s kohya → diffusers module list is reproduced from the tiny config', () => {
  const c = loadCase(golden('lora-kohya'));
  c.close();
  const targets = loraTargetsFromConfigs({ unet: config('unet-sdxl'), textEncoder: config('clip-text-l'), textEncoder2: config('clip-text-g') });
  const mapping = c.json.kohya_to_diffusers_modules as Record<string, string>;
  const tables = { lora_unet_: targets.unet!, lora_te1_: targets.text_encoder!, lora_te2_: targets.text_encoder_2! };
  for (const [kohya, expected] of Object.entries(mapping)) {
    const prefix = (Object.keys(tables) as (keyof typeof tables)[]).find((p) => kohya.startsWith(p))!;
    const module = tables[prefix].aliases.get(kohya.slice(prefix.length));
    assert.equal(`${expected.split(':')[0]}:${module}`, expected, kohya);
  }
});

test('a config with per-block layers_per_block is refused: SGM names cannot address it', () => {
  assert.throws(() => unetLayout({ ...SDXL_BASE_UNET, layers_per_block: [2, 2, 2] }), { code: 'bad_config' });
});
