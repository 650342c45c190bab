// The smoke model set: a tiny random-weight SDXL in the diffusers layout. What it holds must be
// exactly what the engine's builders read, it must load like any diffusers folder, and a seed must
// always write the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../src/engine/errors.js';
import { openSdxlModel } from '../../src/engine/formats/diffusers-folder.js';
import { parseClipTextConfig } from '../../src/engine/nets/clip-config.js';
import { parseUNetConfig } from '../../src/engine/nets/unet-config.js';
import { buildVaeDecoder } from '../../src/engine/nets/vae.js';
import { parseVaeConfig, vaeScaleFactor } from '../../src/engine/nets/vae-config.js';
import { createScheduler } from '../../src/engine/schedulers/index.js';
import {
  SMOKE_CONFIG, checkAgainstBuilder, smokeStateShapes, smokeTokenizerFiles, writeSmokeModel,
} from '../../src/engine/smoke.js';
import { vaeStateShapes } from '../../src/engine/pipelines/state-shapes.js';
import { ClipTokenizer } from '../../src/engine/text/clip-tokenizer.js';
import { run as modelsCli } from '../../src/cli/models.js';
import { FULL_CONFIG, MID_CONFIG } from '../../src/engine/smoke-sizes.js';

const scratch = mkdtempSync(join(tmpdir(), 'likeness-smoke-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const written = (async () => writeSmokeModel(join(scratch, 'a')))();

test('the smoke set is a diffusers SDXL folder: model_index, the four nets, two tokenizers, a scheduler, a README', async () => {
  const dir = await written;
  for (const f of [
    'model_index.json', 'README.md', 'scheduler/scheduler_config.json',
    'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/config.json', 'text_encoder/model.safetensors', 'text_encoder_2/config.json', 'text_encoder_2/model.safetensors',
    'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer_2/special_tokens_map.json',
  ]) assert.ok(existsSync(join(dir, f)), f);
  assert.match(readFileSync(join(dir, 'README.md'), 'utf8'), /RANDOM weights[\s\S]*noise/);
});

test('it opens like any diffusers folder, and holds exactly the parameters the builders read', async () => {
  const model = openSdxlModel(await written);
  try {
    const shapes = smokeStateShapes();
    for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2'] as const) {
      assert.deepEqual(new Set(model[c].weights.names()), new Set(shapes[c].keys()), c);
      for (const [name, shape] of shapes[c]) assert.deepEqual(model[c].weights.info(name).shape, shape, name);
    }
    assert.equal(model.scheduler?._class_name, 'EulerDiscreteScheduler');
    assert.ok(createScheduler(model.scheduler).initNoiseSigma > 1);
    assert.ok(model.tokenizer && model.tokenizer_2);
  } finally {
    model.close();
  }
});

test('its configs are SDXL-shaped: three UNet levels, text_time conditioning, a VAE that scales by 8, a pooled projection', () => {
  const unet = parseUNetConfig(SMOKE_CONFIG.unet);
  assert.deepEqual(unet.down.map((b) => b.type), ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D']);
  assert.ok(unet.embedding.textTime);
  assert.equal(vaeScaleFactor(parseVaeConfig(SMOKE_CONFIG.vae)), 8);
  const te1 = parseClipTextConfig({ ...SMOKE_CONFIG.text_encoder });
  const te2 = parseClipTextConfig({ ...SMOKE_CONFIG.text_encoder_2 });
  assert.equal(SMOKE_CONFIG.unet.cross_attention_dim, te1.hiddenSize + te2.hiddenSize);
  assert.equal(SMOKE_CONFIG.unet.projection_class_embeddings_input_dim, te2.projectionDim! + 6 * SMOKE_CONFIG.unet.addition_time_embed_dim);
});

test('the same seed writes identical files; another seed other weights', async () => {
  const dir = await written;
  const again = await writeSmokeModel(join(scratch, 'b'));
  const other = await writeSmokeModel(join(scratch, 'c'), { seed: 1 });
  for (const f of ['unet/diffusion_pytorch_model.safetensors', 'text_encoder_2/model.safetensors', 'tokenizer/vocab.json']) {
    assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(again, f))), f);
  }
  assert.ok(!readFileSync(join(dir, 'unet/diffusion_pytorch_model.safetensors')).equals(readFileSync(join(other, 'unet/diffusion_pytorch_model.safetensors'))));
});

test('a table entry no builder reads, or a parameter the table lacks, is caught', () => {
  const vae = parseVaeConfig(SMOKE_CONFIG.vae);
  const extra = vaeStateShapes(vae);
  extra.set('decoder.unused.weight', [3]);
  assert.throws(() => checkAgainstBuilder('VAE', extra, (w) => buildVaeDecoder(w, vae)), (e: unknown) => e instanceof EngineError && /never reads/.test(e.message));
  const lacking = vaeStateShapes(vae);
  lacking.delete('decoder.conv_out.bias');
  assert.throws(() => checkAgainstBuilder('VAE', lacking, (w) => buildVaeDecoder(w, vae)), EngineError);
});

test('the tiny tokenizer loads with ClipTokenizer, merges its words whole and stays inside the encoders\' vocabulary', async () => {
  const dir = await written;
  const t1 = ClipTokenizer.fromFolder(join(dir, 'tokenizer'));
  const t2 = ClipTokenizer.fromFolder(join(dir, 'tokenizer_2'));
  assert.deepEqual(t1.tokenize('A photo of a CAT'), ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
  const vocab = Object.keys(smokeTokenizerFiles().vocab).length;
  assert.equal(t1.eosId, vocab - 1); // the largest id, so the legacy eos_token_id 2 pools at eos
  assert.equal(t2.padId, t2.tokenToId('!')); // tokenizer_2 pads with '!', as SDXL's does
  const ids = t1.encode('ünïcödé 😀 and anything else', { padding: 'max_length', maxLength: 77, truncation: true });
  assert.ok(ids.every((id) => id >= 0 && id < vocab));
});

test('likeness models smoke --out DIR writes the set there', async () => {
  const out = join(scratch, 'cli');
  const log = console.log;
  console.log = () => undefined;
  try {
    assert.equal(await modelsCli(['smoke', '--out', out]), 0);
  } finally {
    console.log = log;
  }
  assert.ok(existsSync(join(out, 'model_index.json')));
});

test('the full rehearsal configs have SDXL base 1.0\'s exact parameter counts; mid keeps them but the UNet at about 1/10', () => {
  const count = (m: ReadonlyMap<string, readonly number[]>): number => [...m.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const full = smokeStateShapes(FULL_CONFIG); // checked against the builders inside
  // stabilityai/stable-diffusion-xl-base-1.0: unet, vae, text_encoder, text_encoder_2 (num_parameters())
  assert.deepEqual([full.unet, full.vae, full.text_encoder, full.text_encoder_2].map(count), [2567463684, 83653863, 123060480, 694659840]);
  const mid = smokeStateShapes(MID_CONFIG);
  const ratio = count(full.unet) / count(mid.unet);
  assert.ok(ratio > 9 && ratio < 12, `mid UNet is 1/${ratio.toFixed(1)}`);
  assert.equal(count(mid.text_encoder_2), 694659840);
});
