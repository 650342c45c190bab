// The SDXL UNet graph: the golden, its parameter list, other configs, and its runtime inputs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { weightsHashOf } from '../../../src/engine/nets/net-session.js';
import { openSources } from '../../../src/engine/nets/sdxl-weights.js';
import { attn2Modules, parseUNetConfig } from '../../../src/engine/nets/unet-config.js';
import { buildUnetGraph } from '../../../src/engine/nets/unet.js';
import type { TensorSource } from '../../../src/engine/nets/sdxl-weights.js';
import { createUnetRunner, loadUnet, type UnetRunner } from '../../../src/engine/nets/unet-runner.js';
import { ipAdapterWeightShapes, unetWeightShapes, type ShapeMap } from '../../../src/engine/nets/unet-shapes.js';
import { golden } from '../../helpers/paths.js';
import { batchSlice, caseJson, close, goldenIo, maxAbsDiff, randomF32, tempDir, writeRandomWeights } from './fixtures.js';

const tmp = tempDir('likeness-unet-');
after(() => tmp.remove());
const cacheDir = join(tmp.dir, 'cache');
const session = { intraOpThreads: 1 };

test('golden unet-sdxl: output and output_with_residuals match diffusers', async () => {
  const r = await evaluateCase(golden('unet-sdxl'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('the parameter list of a config is exactly the checkpoint\'s names and shapes', () => {
  const shapes = unetWeightShapes(parseUNetConfig(caseJson('unet-sdxl').config));
  const file = openSources([join(golden('unet-sdxl'), 'weights.safetensors')]);
  try {
    const names = file.files[0]!.names().sort();
    assert.deepEqual([...shapes.keys()].sort(), names);
    for (const n of names) assert.deepEqual(shapes.get(n), file.source.info(n).shape, n);
  } finally {
    file.close();
  }
});

/** SD 1.5-style: three levels, conv projections, no text_time, cross-attention blocks first. */
const THREE_LEVELS = {
  _class_name: 'UNet2DConditionModel',
  in_channels: 4, out_channels: 4,
  block_out_channels: [8, 16, 16],
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  attention_head_dim: 2,
  cross_attention_dim: 24,
  norm_num_groups: 4,
  use_linear_projection: false,
};

/** One level, text_time conditioning, per-block lists, 3 heads, a deeper transformer. */
const ONE_LEVEL = {
  _class_name: 'UNet2DConditionModel',
  in_channels: 4, out_channels: 3,
  block_out_channels: [12],
  down_block_types: ['CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D'],
  layers_per_block: [1],
  num_attention_heads: [3],
  transformer_layers_per_block: [2],
  cross_attention_dim: [16],
  norm_num_groups: 3,
  norm_eps: 1e-6,
  use_linear_projection: true,
  addition_embed_type: 'text_time',
  addition_time_embed_dim: 4,
  projection_class_embeddings_input_dim: 8 + 6 * 4,
  freq_shift: 1,
  flip_sin_to_cos: false,
};

async function randomUnet(name: string, config: Record<string, unknown>, seed: number): Promise<UnetRunner> {
  const dir = join(tmp.dir, name, 'unet');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  await writeRandomWeights(join(dir, 'diffusion_pytorch_model.safetensors'), unetWeightShapes(parseUNetConfig(config)), seed);
  return loadUnet(join(tmp.dir, name), { cacheDir, session });
}

for (const [name, config] of [['three-level', THREE_LEVELS], ['one-level', ONE_LEVEL]] as const) {
  test(`a ${name} UNet loads from a diffusers folder, runs, and treats samples independently`, async () => {
    const runner = await randomUnet(name, config, 7);
    try {
      const cross = Array.isArray(config.cross_attention_dim) ? config.cross_attention_dim[0]! : config.cross_attention_dim;
      const textTime = 'addition_embed_type' in config;
      const x = {
        sample: randomF32([2, 4, 8, 8], 1),
        timestep: 321,
        encoderHiddenStates: randomF32([2, 5, cross], 2),
        ...(textTime ? { textEmbeds: randomF32([2, 8], 3), timeIds: { dtype: 'float32' as const, dims: [2, 6], data: Float32Array.of(64, 64, 0, 0, 64, 64, 48, 32, 0, 0, 48, 32) } } : {}),
      };
      const both = await runner.run(x);
      assert.deepEqual(both.dims, [2, config.out_channels, 8, 8]);
      assert.ok(both.data.every(Number.isFinite));
      const first = await runner.run({
        ...x,
        sample: batchSlice(x.sample, 0, 1),
        encoderHiddenStates: batchSlice(x.encoderHiddenStates, 0, 1),
        ...(x.textEmbeds ? { textEmbeds: batchSlice(x.textEmbeds, 0, 1), timeIds: batchSlice(x.timeIds!, 0, 1) } : {}),
      });
      assert.ok(maxAbsDiff(first.data, batchSlice(both, 0, 1).data) < 1e-5);
    } finally {
      await runner.dispose();
    }
  });
}

test('a latent that is not a multiple of 2^levels upsamples to its skips\' sizes (as diffusers forwards upsample_size)', async () => {
  const runner = await randomUnet('three-level', THREE_LEVELS, 7); // cache hit
  try {
    const out = await runner.run({ sample: randomF32([1, 4, 5, 7], 4), timestep: 10, encoderHiddenStates: randomF32([1, 3, 24], 5) });
    assert.deepEqual(out.dims, [1, 4, 5, 7]);
    assert.ok(out.data.every(Number.isFinite));
  } finally {
    await runner.dispose();
  }
});

async function goldenUnet(controlResiduals: boolean): Promise<{ runner: UnetRunner; close(): void }> {
  const path = join(golden('unet-sdxl'), 'weights.safetensors');
  const file = openSources([path]);
  const runner = await createUnetRunner(
    { config: caseJson('unet-sdxl').config, weights: file.source, weightsHash: await weightsHashOf([path]) },
    { cacheDir, session, controlResiduals },
  );
  return { runner, close: () => file.close() };
}

test('one graph serves any context length (LPW prompts vary), per-sample timesteps, and zero residuals', async () => {
  const io = goldenIo('unet-sdxl');
  const plain = await goldenUnet(false);
  const withRes = await goldenUnet(true);
  try {
    const base = { sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: io.get('encoder_hidden_states'), textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids') };
    const expected = io.get('output');
    // residual inputs left out are zeros: the same as the plain graph
    assert.ok(close((await withRes.runner.run(base)).data, expected.data).ok);
    // [B] timesteps: each sample at its own t equals running it alone
    const ts = { dtype: 'float32' as const, dims: [2], data: Float32Array.of(801, 20) };
    const mixed = await plain.runner.run({ ...base, timestep: ts });
    assert.ok(maxAbsDiff(batchSlice(mixed, 0, 1).data, batchSlice(expected, 0, 1).data) < 1e-5);
    const at20 = await plain.runner.run({ ...base, timestep: 20 });
    assert.ok(maxAbsDiff(batchSlice(mixed, 1, 2).data, batchSlice(at20, 1, 2).data) < 1e-5);
    // 154 tokens through the same session
    const long = await plain.runner.run({ ...base, encoderHiddenStates: randomF32([2, 154, 64], 9) });
    assert.deepEqual(long.dims, [2, 4, 16, 16]);
    assert.equal(withRes.runner.compiled.session.inputNames.filter((n) => n.startsWith('down_block_additional_residual_')).length, 6);
  } finally {
    io.close();
    await plain.runner.dispose();
    await withRes.runner.dispose();
    plain.close();
    withRes.close();
  }
});

test('a config the graphs do not implement is refused by name', () => {
  assert.throws(() => parseUNetConfig({ ...THREE_LEVELS, class_embed_type: 'timestep' }), /class_embed_type/);
  assert.throws(() => parseUNetConfig({ ...THREE_LEVELS, down_block_types: ['AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'] }), /AttnDownBlock2D/);
});

test('a float16 graph (the GPU compute type) keeps float32 inputs and outputs and stays near the golden', async () => {
  const path = join(golden('unet-sdxl'), 'weights.safetensors');
  const file = openSources([path]);
  const io = goldenIo('unet-sdxl');
  const runner = await createUnetRunner(
    { config: caseJson('unet-sdxl').config, weights: file.source, weightsHash: await weightsHashOf([path]) },
    { cacheDir, session, dtype: 'float16' },
  );
  try {
    const out = await runner.run({ sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: io.get('encoder_hidden_states'), textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids') });
    assert.equal(out.dtype, 'float32');
    const err = maxAbsDiff(out.data, io.get('output').data);
    assert.ok(err < 1e-2, `float16 error ${err}`);
  } finally {
    io.close();
    await runner.dispose();
    file.close();
  }
});

/** stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that matter). */
const SDXL_BASE = {
  act_fn: 'silu', addition_embed_type: 'text_time', addition_time_embed_dim: 256, attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280], cross_attention_dim: 2048, down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  flip_sin_to_cos: true, freq_shift: 0, in_channels: 4, layers_per_block: 2, norm_num_groups: 32, out_channels: 4,
  projection_class_embeddings_input_dim: 2816, transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'], upcast_attention: null, use_linear_projection: true,
  resnet_out_scale_factor: 1.0, num_attention_heads: null, mid_block_type: 'UNetMidBlock2DCrossAttn',
};

/** Shapes only: building a graph reads no weight data. */
function shapesOnly(shapes: ShapeMap): TensorSource {
  return {
    has: (n) => shapes.has(n),
    info: (n) => ({ dtype: 'F32', shape: shapes.get(n)! }),
    read: () => { throw new Error('no data'); },
    readFloat32: () => { throw new Error('no data'); },
  };
}

test('the real SDXL config gives SDXL\'s 2,567,463,684 parameters, all used by the graph, and InstantID\'s 70 IP slots', () => {
  const cfg = parseUNetConfig(SDXL_BASE);
  const shapes = unetWeightShapes(cfg);
  const count = [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  assert.equal(count, 2_567_463_684);
  const ip = ipAdapterWeightShapes(cfg, shapes);
  assert.equal(ip.size, 140);
  assert.deepEqual(ip.get('ip_adapter.139.to_k_ip.weight'), [1280, 2048]);
  const modules = attn2Modules(cfg);
  assert.equal(modules[24], 'up_blocks.0.attentions.0.transformer_blocks.0.attn2'); // k = 49
  assert.equal(modules[60], 'mid_block.attentions.0.transformer_blocks.0.attn2'); // k = 121
  const ipSource = shapesOnly(new Map([...ip].map(([k, v]) => [k.slice('ip_adapter.'.length), v])));
  const model = buildUnetGraph(shapesOnly(shapes), cfg, { controlResiduals: true, ipAdapter: { weights: ipSource, numTokens: 16, regionMask: true } });
  const params = new Set(model.initializers.map((i) => i.name.split('::')[0]!));
  for (const name of shapes.keys()) assert.ok(params.has(name), name);
  for (const name of ip.keys()) assert.ok(params.has(name), name);
  assert.deepEqual(model.inputs.map((i) => i.name).filter((n) => !n.startsWith('down_block')), [
    'sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids', 'mid_block_additional_residual', 'ip_adapter_scale', 'region_mask',
  ]);
  assert.equal(model.inputs.filter((i) => i.name.startsWith('down_block_additional_residual_')).length, 9);
});
