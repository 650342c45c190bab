// Single-file SGM SDXL checkpoints: every tensor renamed to diffusers / transformers names and
// bit-identical to the diffusers-layout files, configs read back from the shapes, any float dtype,
// and the messages users get for files that are not SDXL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { loadCase } from '../../../src/engine/golden/case.js';
import { checkSdxlKeys, openSingleFile, SGM_PREFIXES } from '../../../src/engine/formats/single-file.js';
import { mapOpenClip } from '../../../src/engine/formats/keymaps/clip.js';
import { mapSgmUnet } from '../../../src/engine/formats/keymaps/sgm-unet.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { bf16ToFloat, halfToFloat } from '../../../src/engine/formats/dtype.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/engine/formats/safetensors-write.js';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { golden } from '../../helpers/paths.js';
import { sdxlUnetShapes } from './sgm-shapes.js';

const sfCase = loadCase(golden('unet-sdxl-singlefile'));
const checkpoint = sfCase.file('sd_xl_tiny.safetensors');
const REFERENCES = { unet: 'unet-sdxl', vae: 'vae', text_encoder: 'clip-text-l', text_encoder_2: 'clip-text-g' } as const;

const isEngineError = (code: string, pattern: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof EngineError, String(e));
  assert.equal(e.code, code, e.message);
  assert.match(e.message, pattern);
  return true;
};

/** float32 → bfloat16 bits, rounding to nearest even. */
function toBf16Bits(v: number): number {
  const u = new Uint32Array(Float32Array.of(v).buffer)[0]!;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** Writes a copy of the golden checkpoint with tensors dropped, renamed or stored in another dtype. */
async function rewrite(path: string, options: { dtype?: 'F32' | 'BF16'; keep?: (name: string) => boolean; extra?: Record<string, TensorToWrite> } = {}): Promise<void> {
  const src = SafetensorsFile.open(checkpoint);
  try {
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of src.names().filter(options.keep ?? (() => true))) {
      const shape = src.info(name).shape;
      const values = src.readFloat32(name);
      if (options.dtype === 'BF16') {
        tensors[name] = { dtype: 'BF16', shape, data: Uint16Array.from(values, toBf16Bits) };
      } else if (options.dtype === 'F32') {
        tensors[name] = { dtype: 'F32', shape, data: values };
      } else {
        tensors[name] = { dtype: src.info(name).dtype, shape, data: src.read(name) };
      }
    }
    await writeSafetensors(path, { ...tensors, ...(options.extra ?? {}) });
  } finally {
    src.close();
  }
}

function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-single-file-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('every tensor of the four diffusers-layout weight files comes out of the SGM checkpoint, bit-identical, none extra', () => {
  const model = openSingleFile(checkpoint);
  try {
    for (const [component, reference] of Object.entries(REFERENCES)) {
      const mapped = model[component as keyof typeof REFERENCES].weights;
      const ref = openWeights(loadCase(golden(reference)).file('weights.safetensors'));
      try {
        assert.deepEqual(mapped.names().sort(), ref.names().sort(), component);
        for (const name of ref.names()) {
          assert.deepEqual(mapped.info(name).shape, ref.info(name).shape, name);
          assert.deepEqual(mapped.readFloat32(name), ref.readFloat32(name), name);
        }
      } finally {
        ref.close();
      }
    }
  } finally {
    model.close();
  }
});

test('configs read from the shapes equal the tiny models’ on everything the shapes determine', () => {
  const model = openSingleFile(checkpoint);
  try {
    for (const component of Object.keys(REFERENCES) as (keyof typeof REFERENCES)[]) {
      const { config, assumed } = model[component];
      const expected = sfCase.config[component] as Record<string, unknown>;
      for (const [key, value] of Object.entries(config)) {
        if (assumed.includes(key) || key === '_class_name' || key === 'architectures') continue;
        assert.deepEqual(value, expected[key], `${component}.${key}`);
      }
    }
    assert.deepEqual(model.unet.config.transformer_layers_per_block, [1, 2]);
    assert.equal(model.unet.config.addition_time_embed_dim, 8);
    assert.deepEqual(model.vae.config.block_out_channels, [8, 8, 8, 16]);
    assert.equal(model.text_encoder_2.config.projection_dim, 32);
    assert.equal(model.text_encoder.config.hidden_act, 'quick_gelu');
    assert.equal(model.text_encoder_2.config.hidden_act, 'gelu');
  } finally {
    model.close();
  }
});

test('OpenCLIP’s fused in_proj becomes q, k, v row blocks and text_projection is transposed', () => {
  const model = openSingleFile(checkpoint);
  const raw = SafetensorsFile.open(checkpoint);
  try {
    const w = model.text_encoder_2.weights;
    const fused = raw.readFloat32(`${SGM_PREFIXES.text_encoder_2}transformer.resblocks.3.attn.in_proj_weight`); // [96, 32]
    (['q', 'k', 'v'] as const).forEach((p, i) => {
      assert.deepEqual(w.readFloat32(`text_model.encoder.layers.3.self_attn.${p}_proj.weight`), fused.slice(i * 32 * 32, (i + 1) * 32 * 32));
    });
    const proj = raw.readFloat32(`${SGM_PREFIXES.text_encoder_2}text_projection`); // [hidden, proj]
    const linear = w.readFloat32('text_projection.weight'); // [proj, hidden]
    for (let r = 0; r < 32; r++) for (let c = 0; c < 32; c++) assert.equal(linear[c * 32 + r], proj[r * 32 + c]);
    assert.deepEqual(model.vae.weights.info('decoder.mid_block.attentions.0.to_q.weight').shape, [16, 16]);
    // The raw F16 bits go through the same split and transpose (for float16 graphs).
    for (const name of ['text_model.encoder.layers.3.self_attn.k_proj.weight', 'text_projection.weight']) {
      const bits = w.read(name);
      assert.ok(bits instanceof Uint16Array);
      assert.deepEqual(Float32Array.from(bits, halfToFloat), w.readFloat32(name));
    }
  } finally {
    raw.close();
    model.close();
  }
});

test('F32 and BF16 checkpoints load like the F16 one (BF16 values upcast exactly)', async () => {
  await withTemp(async (dir) => {
    await rewrite(join(dir, 'f32.safetensors'), { dtype: 'F32' });
    await rewrite(join(dir, 'bf16.safetensors'), { dtype: 'BF16' });
    const f16 = openSingleFile(checkpoint);
    const f32 = openSingleFile(join(dir, 'f32.safetensors'));
    const bf16 = openSingleFile(join(dir, 'bf16.safetensors'));
    try {
      for (const name of ['text_model.encoder.layers.0.self_attn.v_proj.bias', 'text_projection.weight']) {
        const want = f16.text_encoder_2.weights.readFloat32(name);
        assert.deepEqual(f32.text_encoder_2.weights.readFloat32(name), want);
        const got = bf16.text_encoder_2.weights.readFloat32(name);
        got.forEach((v, i) => assert.equal(v, bf16ToFloat(toBf16Bits(want[i]!))));
      }
      assert.equal(bf16.unet.weights.info('conv_in.weight').dtype, 'BF16');
      assert.deepEqual(bf16.unet.config, f16.unet.config);
    } finally {
      f16.close();
      f32.close();
      bf16.close();
    }
  });
});

test('overrides replace conventional values (heads, groups) and are no longer listed as assumed', () => {
  const model = openSingleFile(checkpoint, { overrides: { unet: { attention_head_dim: [2, 4], norm_num_groups: 4 }, text_encoder: { num_attention_heads: 4 } } });
  try {
    assert.deepEqual(model.unet.config.attention_head_dim, [2, 4]);
    assert.equal(model.unet.config.norm_num_groups, 4);
    assert.ok(!model.unet.assumed.includes('attention_head_dim') && !model.unet.assumed.includes('norm_num_groups'));
    assert.ok(model.unet.assumed.includes('sample_size'));
    assert.equal(model.text_encoder.config.num_attention_heads, 4);
  } finally {
    model.close();
  }
});

test('SDXL-sized shapes give SDXL base’s UNet config: 64-wide heads [5, 10, 20], depths [1, 2, 10], 256-wide time ids', () => {
  const { table, config } = mapSgmUnet(sdxlUnetShapes(), { pooledDim: 1280 });
  assert.deepEqual(config.block_out_channels, [320, 640, 1280]);
  assert.deepEqual(config.attention_head_dim, [5, 10, 20]);
  assert.deepEqual(config.transformer_layers_per_block, [1, 2, 10]);
  assert.equal(config.reverse_transformer_layers_per_block, null);
  assert.deepEqual(config.down_block_types, ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D']);
  assert.deepEqual(config.up_block_types, ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D']);
  assert.equal(config.cross_attention_dim, 2048);
  assert.equal(config.addition_time_embed_dim, 256);
  assert.equal(config.projection_class_embeddings_input_dim, 2816);
  assert.equal(table.get('down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight')?.source, 'input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight');
  assert.equal(table.get('down_blocks.1.downsamplers.0.conv.weight')?.source, 'input_blocks.6.0.op.weight');
  assert.equal(table.get('up_blocks.1.upsamplers.0.conv.weight')?.source, 'output_blocks.5.2.conv.weight');
  assert.equal(table.get('up_blocks.2.resnets.2.conv_shortcut.weight')?.source, 'output_blocks.8.0.skip_connection.weight');
  assert.equal(table.get('mid_block.attentions.0.transformer_blocks.9.ff.net.2.weight')?.source, 'middle_block.1.transformer_blocks.9.ff.net.2.weight');
});

test('CLIP heads follow the 64-wide convention: 1280 wide → 20 heads, listed as assumed', () => {
  const shapes = new Map<string, number[]>([
    ['token_embedding.weight', [49408, 1280]], ['positional_embedding', [77, 1280]], ['text_projection', [1280, 1280]],
    ['transformer.resblocks.0.mlp.c_fc.weight', [5120, 1280]], ['transformer.resblocks.0.attn.in_proj_weight', [3840, 1280]],
  ]);
  const { config, assumed } = mapOpenClip(shapes);
  assert.equal(config.num_attention_heads, 20);
  assert.equal(config.intermediate_size, 5120);
  assert.ok(assumed.includes('num_attention_heads'));
});

test('an SD 1.5 checkpoint is refused, naming what was found', async () => {
  const sd15 = ['model.diffusion_model.input_blocks.0.0.weight', 'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight', 'first_stage_model.decoder.conv_in.weight'];
  assert.throws(() => checkSdxlKeys(sd15, 'v1-5.safetensors'), isEngineError('unsupported_checkpoint', /v1-5\.safetensors is a Stable Diffusion 1\.x checkpoint.*cond_stage_model\.transformer.*SDXL/));
  await withTemp(async (dir) => {
    const path = join(dir, 'sd15.safetensors');
    const t: TensorToWrite = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    await writeSafetensors(path, Object.fromEntries(sd15.map((n) => [n, t])));
    assert.throws(() => openSingleFile(path), isEngineError('unsupported_checkpoint', /Stable Diffusion 1\.x/));
  });
});

test('other files that are not SDXL checkpoints are told apart', () => {
  const refused = (names: string[], pattern: RegExp): void => assert.throws(() => checkSdxlKeys(names, 'f'), isEngineError('unsupported_checkpoint', pattern));
  refused(['model.diffusion_model.x', 'cond_stage_model.model.transformer.resblocks.0.ln_1.weight'], /Stable Diffusion 2\.x/);
  refused(['model.diffusion_model.x', 'conditioner.embedders.0.model.ln_final.weight'], /SDXL refiner/);
  refused(['lora_unet_input_blocks_4_1_proj_in.lora_down.weight'], /LoRA/);
  refused(['conv_in.weight', 'down_blocks.0.resnets.0.conv1.weight'], /diffusers-layout/);
  refused(['model.diffusion_model.x'], /SGM UNet without text_encoder.*and text_encoder_2/);
  refused(['foo.bar.baz'], /not a Stable Diffusion checkpoint.*foo\.bar/);
});

test('a checkpoint without its VAE names the missing component', async () => {
  await withTemp(async (dir) => {
    const path = join(dir, 'no-vae.safetensors');
    await rewrite(path, { keep: (n) => !n.startsWith('first_stage_model.') });
    assert.throws(() => openSingleFile(path), isEngineError('missing_component', /vae \(first_stage_model\.\*\)/));
  });
});

test('a UNet tensor outside the SGM layout is refused by name rather than dropped; known extras are ignored', async () => {
  await withTemp(async (dir) => {
    const t: TensorToWrite = { dtype: 'F16', shape: [1], data: new Uint16Array(1) };
    const odd = join(dir, 'odd.safetensors');
    await rewrite(odd, { extra: { 'model.diffusion_model.input_blocks.1.3.weight': t } });
    assert.throws(() => openSingleFile(odd), isEngineError('unsupported_checkpoint', /input_blocks\.1\.3\.weight/));
    const extras = join(dir, 'extras.safetensors');
    await rewrite(extras, { extra: { 'conditioner.embedders.1.model.logit_scale': t, 'conditioner.embedders.0.transformer.text_model.embeddings.position_ids': t, 'model_ema.decay': t } });
    const model = openSingleFile(extras);
    model.close();
  });
});
