// readLora: the spellings people's LoRA files use, normalized to deltas on diffusers/transformers weights.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describeDeltas, readLora, type LoraFile } from '../../../src/engine/formats/lora.js';
import { loraTargetsFromConfigs, type LoraTargets } from '../../../src/engine/formats/lora-keymap.js';
import { EngineError } from '../../../src/engine/errors.js';
import { golden } from '../../helpers/paths.js';
import { bytesOfFloats, dictPickle, op, pickle, tensorPickle, torchZip } from '../formats/fixtures.js';
import { factors, ramp, removeScratch, tinyConfigs, writeLoraFile, writeRaw } from './helpers.js';

after(removeScratch);

const targets: LoraTargets = loraTargetsFromConfigs(tinyConfigs());
// Tiny shapes: down block 1 is cross-attention at 16 channels, context 64; CLIP width 32, MLP 37.
const Q = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q';
const K2 = 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k';
const FC1 = 'text_model.encoder.layers.0.mlp.fc1';

function read(path: string, opts: Parameters<typeof readLora>[2] = {}): LoraFile {
  return readLora(path, targets, opts);
}

function incompatible(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof EngineError && err.code === 'lora_incompatible' && message.test(err.message));
}

test('the golden kohya LoRA: every module matched, per-module alphas, LoCon convs with 3×3 down kernels', () => {
  const lora = read(join(golden('lora-kohya'), 'lora_kohya.safetensors'));
  try {
    assert.equal(lora.format, 'kohya');
    assert.deepEqual(lora.report, { matched: 141, unmatched: [] });
    const q = lora.deltas.unet.find((d) => d.target === `${Q}.weight`)!;
    assert.equal(q.source, 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q');
    assert.deepEqual([q.rank, q.alpha], [4, 2]);
    const op = lora.deltas.unet.find((d) => d.source === 'lora_unet_input_blocks_3_0_op')!;
    assert.equal(op.target, 'down_blocks.0.downsamplers.0.conv.weight');
    assert.deepEqual([op.downShape, op.upShape, op.alpha], [[4, 8, 3, 3], [8, 4], 1]);
    assert.equal(lora.deltas.text_encoder.length, 12);
    assert.equal(lora.deltas.text_encoder_2.length, 12);
  } finally {
    lora.close();
  }
});

test('kohya names written with diffusers paths (lora_unet_down_blocks_…) map like SGM ones', () => {
  const lora = read(writeLoraFile([
    ...factors('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q', [16, 16], 2, { alpha: 1 }),
    ...factors('lora_unet_up_blocks_0_upsamplers_0_conv', [16, 16, 3, 3], 2, { alpha: 1 }),
  ]));
  assert.deepEqual(describeDeltas(lora), [`unet:${Q}`, 'unet:up_blocks.0.upsamplers.0.conv']);
  lora.close();
});

test('diffusers / PEFT files: lora_A / lora_B under unet., text_encoder. and text_encoder_2.; alpha is the rank when absent', () => {
  const lora = read(writeLoraFile([
    ...factors(`unet.${Q}`, [16, 16], 4, { down: 'lora_A.weight', up: 'lora_B.weight' }),
    ...factors(`unet.${K2}`, [16, 64], 4, { down: 'lora_A.default.weight', up: 'lora_B.default.weight', alpha: 8 }),
    ...factors(`text_encoder.${FC1}`, [37, 32], 4, { down: 'lora_A.weight', up: 'lora_B.weight' }),
    ...factors(`text_encoder_2.${FC1}`, [37, 32], 4, { down: 'lora_A.weight', up: 'lora_B.weight' }),
  ]));
  assert.equal(lora.format, 'diffusers');
  assert.deepEqual(describeDeltas(lora), [`unet:${Q}`, `unet:${K2}`, `te1:${FC1}`, `te2:${FC1}`]);
  assert.deepEqual(lora.deltas.unet.map((d) => d.alpha), [4, 8]);
  lora.close();
});

test('older diffusers spellings: processor.to_q_lora, .lora.down/up, lora_linear_layer, self_attn.to_out_lora', () => {
  const attn = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1';
  const lora = read(writeLoraFile([
    ...factors(`unet.${attn}.processor.to_q_lora`, [16, 16], 2, { down: 'down.weight', up: 'up.weight' }),
    ...factors(`unet.${attn}.processor.to_out_lora`, [16, 16], 2, { down: 'down.weight', up: 'up.weight' }),
    ...factors(`unet.${K2}`, [16, 64], 2, { down: 'lora.down.weight', up: 'lora.up.weight' }),
    ...factors(`text_encoder.${FC1}`, [37, 32], 2, { down: 'lora_linear_layer.down.weight', up: 'lora_linear_layer.up.weight' }),
    ...factors('text_encoder.text_model.encoder.layers.1.self_attn.to_out_lora', [32, 32], 2, { down: 'down.weight', up: 'up.weight' }),
  ]));
  assert.deepEqual(describeDeltas(lora).sort(), [
    `te1:${FC1}`, 'te1:text_model.encoder.layers.1.self_attn.out_proj', `unet:${attn}.to_out.0`, `unet:${attn}.to_q`, `unet:${K2}`,
  ]);
  lora.close();
});

test('a LyCORIS Tucker mid kernel is folded into a full 3×3 down factor', () => {
  const conv = 'lora_unet_input_blocks_1_0_in_layers_2'; // down_blocks.0.resnets.0.conv1 [8, 8, 3, 3]
  const mid = ramp(2 * 2 * 9, 0.3, 5);
  const down = ramp(2 * 8, 0.2, 3);
  const lora = read(writeLoraFile([
    [`${conv}.lora_down.weight`, { dtype: 'F32', shape: [2, 8, 1, 1], data: down }],
    [`${conv}.lora_mid.weight`, { dtype: 'F32', shape: [2, 2, 3, 3], data: mid }],
    [`${conv}.lora_up.weight`, { dtype: 'F32', shape: [8, 2, 1, 1], data: ramp(16, 0.1) }],
  ]));
  const [delta] = lora.deltas.unet;
  assert.deepEqual(delta!.downShape, [2, 8, 3, 3]);
  const folded = delta!.load().down;
  for (const [i, c, p] of [[0, 0, 0], [1, 7, 8], [0, 3, 4]] as const) {
    const expected = mid[(i * 2 + 0) * 9 + p]! * down[0 * 8 + c]! + mid[(i * 2 + 1) * 9 + p]! * down[1 * 8 + c]!;
    assert.ok(Math.abs(folded[(i * 8 + c) * 9 + p]! - expected) < 1e-7);
  }
  lora.close();
});

test('a DoRA magnitude is recognized per output row (PEFT) or per input channel (LyCORIS)', () => {
  const lora = read(writeLoraFile([
    ...factors(`lora_unet_${Q.replace(/\./g, '_')}`, [16, 16], 2, { alpha: 1 }),
    [`lora_unet_${Q.replace(/\./g, '_')}.dora_scale`, { dtype: 'F32', shape: [16, 1], data: ramp(16, 1, 1) }],
    ...factors(`lora_unet_${K2.replace(/\./g, '_')}`, [16, 64], 2, { alpha: 1 }),
    [`lora_unet_${K2.replace(/\./g, '_')}.dora_scale`, { dtype: 'F32', shape: [1, 64], data: ramp(64, 1, 1) }],
  ]));
  assert.deepEqual(lora.deltas.unet.map((d) => d.dora), ['out', 'in']);
  assert.equal(lora.deltas.unet[0]!.load().doraScale!.length, 16);
  lora.close();
});

test('a LoRA for SD 1.5 is refused, naming some of its layers', () => {
  // SD 1.5: cross-attention in down blocks 0-2, a fourth down block, a 768-wide context, one text encoder
  const path = writeLoraFile([
    ...factors('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q', [320, 320], 4, { alpha: 4 }),
    ...factors('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', [640, 768], 4, { alpha: 4 }),
    ...factors('lora_unet_down_blocks_3_resnets_0_conv1', [1280, 1280, 3, 3], 4, { alpha: 4 }),
    ...factors('lora_te_text_model_encoder_layers_0_self_attn_q_proj', [768, 768], 4, { alpha: 4 }),
  ]);
  incompatible(() => read(path, { label: 'selectedLoraModelPrivateUrl' }),
    /^selectedLoraModelPrivateUrl is not an SDXL LoRA .*SD 1\.x\/2\.x.*none of its layers fit.*lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q \(no such layer in this unet\).*lora_te_text_model_encoder_layers_0_self_attn_q_proj \(a single text encoder/);
});

test('a Flux LoRA is refused as made for Flux', () => {
  const path = writeLoraFile([
    ...factors('lora_unet_double_blocks_0_img_attn_qkv', [9, 3], 2, { alpha: 2 }),
    ...factors('transformer.single_transformer_blocks.0.attn.to_q', [3, 3], 2, { down: 'lora_A.weight', up: 'lora_B.weight' }),
  ]);
  incompatible(() => read(path), /looks made for Flux/);
});

test('factors whose shapes do not fit the layer do not count as a match', () => {
  const path = writeLoraFile(factors(`lora_unet_${K2.replace(/\./g, '_')}`, [16, 768], 2, { alpha: 1 }));
  incompatible(() => read(path), /do not fit the layer's weight \[16, 64\]/);
});

test('a few unknown layers among many are reported, not fatal', () => {
  const lora = read(writeLoraFile([
    ...factors(`lora_unet_${Q.replace(/\./g, '_')}`, [16, 16], 2, { alpha: 1 }),
    ...factors(`lora_te1_${FC1.replace(/\./g, '_')}`, [37, 32], 2, { alpha: 1 }),
    ...factors('lora_unet_input_blocks_4_1_transformer_blocks_7_attn1_to_q', [16, 16], 2, { alpha: 1 }),
    ['lora_unet_x.hada_w1_a', { dtype: 'F32', shape: [1], data: Float32Array.of(0) }],
  ]));
  assert.equal(lora.report.matched, 2);
  assert.deepEqual(lora.report.unmatched, [
    'lora_unet_x.hada_w1_a (LoHa (hada_*) is not supported)',
    'lora_unet_input_blocks_4_1_transformer_blocks_7_attn1_to_q (no such layer in this unet)',
  ]);
  lora.close();
});

test('a file that is not a weight file, or a torch pickle without the operator\'s permission, is refused before parsing', () => {
  const html = writeRaw('page.safetensors', new TextEncoder().encode('<!doctype html><html>sign in</html>'));
  assert.throws(() => read(html, { label: 'the LoRA' }), { code: 'lora_not_safetensors', message: /the LoRA is not a \.safetensors file/ });
  const down = bytesOfFloats([...ramp(2 * 16)]);
  const up = bytesOfFloats([...ramp(16 * 2)]);
  const name = `lora_unet_${Q.replace(/\./g, '_')}`;
  const pt = writeRaw('lora.pt', torchZip(pickle(op.proto(2), dictPickle([
    [`${name}.lora_down.weight`, tensorPickle('FloatStorage', '0', 32, 0, [2, 16], [16, 1])],
    [`${name}.lora_up.weight`, tensorPickle('FloatStorage', '1', 32, 0, [16, 2], [2, 1])],
  ]), op.stop), { 0: down, 1: up }));
  assert.throws(() => read(pt), { code: 'lora_not_safetensors', message: /torch pickle/ });
  const lora = read(pt, { allowPickle: true });
  assert.deepEqual(describeDeltas(lora), [`unet:${Q}`]);
  lora.close();
});

test('the content id is the caller\'s (the cache\'s sha256) or a fingerprint of the file', () => {
  const path = writeLoraFile(factors(`lora_unet_${Q.replace(/\./g, '_')}`, [16, 16], 2));
  const a = read(path, { id: 'abc' });
  const b = read(path);
  assert.equal(a.id, 'abc');
  assert.match(b.id, /^[0-9a-f]{64}$/);
  a.close();
  b.close();
});
