// The smoke set's LoRA: kohya-format, SGM names, reads back fully matched on the configs it was made for.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readLora } from '../../../src/engine/formats/lora.js';
import { loraTargetsFromConfigs } from '../../../src/engine/formats/lora-keymap.js';
import { smokeLoraTensors, writeSmokeLora } from '../../../src/engine/lora/smoke.js';
import { scratchDir } from '../formats/fixtures.js';
import { tinyConfigs } from './helpers.js';

const scratch = scratchDir('smoke-lora');
after(() => scratch.remove());

test('the smoke LoRA covers transformers, LoCon convs and both text encoders, and every module matches', async () => {
  const configs = tinyConfigs();
  const path = scratch.path('smoke.safetensors');
  const { modules } = await writeSmokeLora(path, configs, { rank: 2, seed: 7 });
  const lora = readLora(path, loraTargetsFromConfigs(configs));
  try {
    assert.equal(lora.format, 'kohya');
    assert.deepEqual(lora.report, { matched: modules, unmatched: [] });
    const sources = lora.deltas.unet.map((d) => d.source);
    assert.ok(sources.includes('lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k'));
    assert.ok(sources.includes('lora_unet_input_blocks_3_0_op'));
    assert.ok(sources.includes('lora_unet_output_blocks_2_2_conv'));
    assert.equal(lora.deltas.text_encoder.length, 5 * 6);
    assert.equal(lora.deltas.text_encoder_2.length, 5 * 6);
    assert.deepEqual(lora.deltas.unet.map((d) => d.alpha).filter((a) => a !== 1), []);
  } finally {
    lora.close();
  }
});

test('the same seed writes the same file; without convs or text encoders it is attention-only', async () => {
  const configs = tinyConfigs();
  const [a, b] = [scratch.path('a.safetensors'), scratch.path('b.safetensors')];
  await writeSmokeLora(a, configs, { seed: 3 });
  await writeSmokeLora(b, configs, { seed: 3 });
  assert.deepEqual(readFileSync(a), readFileSync(b));
  const names = [...smokeLoraTensors(configs, { convs: false, textEncoders: false }).keys()];
  assert.ok(names.every((n) => /^lora_unet_(input_blocks|middle_block|output_blocks)_\d+_(\d+_)?(proj_in|proj_out|transformer_blocks)/.test(n)), names.find((n) => !/transformer|proj/.test(n)));
});
