// The UNet with InstantID's IP-Adapter: the golden, the runtime scale, the face-region mask, and
// the `_full` pipeline's UNet call (IdentityNet + second ControlNet residuals, with and without mask).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { f32, weightsHashOf, type F32 } from '../../../src/engine/nets/net-session.js';
import { openSources } from '../../../src/engine/nets/sdxl-weights.js';
import { createUnetRunner, ipAdapterSource, type UnetRunner } from '../../../src/engine/nets/unet-runner.js';
import { golden } from '../../helpers/paths.js';
import { batchSlice, caseJson, cat, close, goldenIo, maxAbsDiff, tempDir } from './fixtures.js';

const tmp = tempDir('likeness-unet-ip-');
after(() => tmp.remove());
const cacheDir = join(tmp.dir, 'cache');
const session = { intraOpThreads: 1 };
const basePath = join(golden('unet-sdxl'), 'weights.safetensors');
const ipPath = join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin');
const unetConfig = caseJson('unet-sdxl').config;

async function unet(options: { ip?: { regionMask?: boolean }; controlResiduals?: boolean }): Promise<{ runner: UnetRunner; close(): void }> {
  const base = openSources([basePath]);
  const ip = openSources([ipPath]);
  const runner = await createUnetRunner({
    config: unetConfig,
    weights: base.source,
    weightsHash: await weightsHashOf([basePath]),
    ...(options.ip ? { ipAdapter: { weights: ipAdapterSource(ip.source), weightsHash: await weightsHashOf([ipPath]), numTokens: 4, regionMask: options.ip.regionMask ?? false } } : {}),
  }, { cacheDir, session, controlResiduals: options.controlResiduals ?? false });
  return { runner, close: () => { base.close(); ip.close(); } };
}

test('golden instantid-ipadapter-unet: IPAttnProcessor on every attn2 matches InstantID', async () => {
  const r = await evaluateCase(golden('instantid-ipadapter-unet'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('ip_adapter_scale is a runtime input: 0 gives the plain UNet, other values need no rebuild', async () => {
  const io = goldenIo('instantid-ipadapter-unet');
  const ipUnet = await unet({ ip: {} });
  const plain = await unet({});
  try {
    const ctx = io.get('encoder_hidden_states'); // [2, 81, 64] = 77 text + 4 image tokens
    const x = { sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: ctx, textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids') };
    const textOnly = { ...x, encoderHiddenStates: sliceTokens(ctx, 0, 77) };
    const zero = await ipUnet.runner.run({ ...x, ipAdapterScale: 0 });
    const base = await plain.runner.run(textOnly);
    assert.ok(maxAbsDiff(zero.data, base.data) <= 1e-6, `scale 0 differs from the plain UNet by ${maxAbsDiff(zero.data, base.data)}`);
    const at07 = await ipUnet.runner.run({ ...x, ipAdapterScale: 0.7 });
    assert.ok(close(at07.data, io.get('output').data).ok);
    const at03 = await ipUnet.runner.run({ ...x, ipAdapterScale: 0.3 });
    assert.ok(maxAbsDiff(at03.data, at07.data) > 1e-3);
    assert.ok(ipUnet.runner.compiled.session.inputNames.includes('ip_adapter_scale'));
    const again = await unet({ ip: {} });
    assert.equal(again.runner.compiled.cacheHit, true);
    await again.runner.dispose();
    again.close();
    await assert.rejects(ipUnet.runner.run(x), /ipAdapterScale/);
  } finally {
    io.close();
    await ipUnet.runner.dispose();
    await plain.runner.dispose();
    ipUnet.close();
    plain.close();
  }
});

test('the region mask gates the IP branch: ones change nothing, zeros equal scale 0', async () => {
  const io = goldenIo('instantid-ipadapter-unet');
  const masked = await unet({ ip: { regionMask: true } });
  try {
    const x = { sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: io.get('encoder_hidden_states'), textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids'), ipAdapterScale: 0.7 };
    const ones = await masked.runner.run({ ...x, regionMask: f32([1, 1, 128, 128], new Float32Array(128 * 128).fill(1)) });
    assert.ok(close(ones.data, io.get('output').data).ok);
    const zeros = await masked.runner.run({ ...x, regionMask: f32([1, 1, 128, 128]) });
    const off = await masked.runner.run({ ...x, ipAdapterScale: 0 });
    assert.ok(maxAbsDiff(zeros.data, off.data) <= 1e-6);
  } finally {
    io.close();
    await masked.runner.dispose();
    masked.close();
  }
});

function sliceTokens(t: F32, start: number, end: number): F32 {
  const [b, s, c] = t.dims as [number, number, number];
  const out = new Float32Array(b * (end - start) * c);
  for (let i = 0; i < b; i++) out.set(t.data.subarray((i * s + start) * c, (i * s + end) * c), i * (end - start) * c);
  return f32([b, end - start, c], out);
}

/** channel 0 / 255 of the `_full` pipeline's control mask, [1, 1, H, W]. */
function maskFromImage(io: ReturnType<typeof goldenIo>): F32 {
  const img = io.image('control_mask_uint8'); // [1, 3, H, W]
  const [, , h, w] = img.dims as [number, number, number, number];
  return f32([1, 1, h, w], img.data.slice(0, h * w));
}

test('the _full pipeline\'s step-0 UNet call (residuals, IP tokens, with and without the face-region mask) matches', async () => {
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  const u = await unet({ ip: { regionMask: true }, controlResiduals: true });
  try {
    const text = cat([io.get('negative_prompt_embeds'), io.get('prompt_embeds')], 0); // [2, L, 64]
    const ctx = cat([text, io.get('prompt_image_emb')], 1); // [2, L + 4, 64]
    const t = batchSlice(io.get('timesteps'), 0, 1);
    const base = {
      sample: io.get('step0.latent_model_input'), timestep: t, encoderHiddenStates: ctx,
      textEmbeds: cat([io.get('negative_pooled_prompt_embeds'), io.get('pooled_prompt_embeds')], 0), timeIds: io.get('add_time_ids'),
      ipAdapterScale: 0.8,
    };
    const residuals = (p: string): { down: F32[]; mid: F32 } => ({ down: [0, 1, 2, 3, 4, 5].map((j) => io.get(`${p}.controlnet_down_${j}`)), mid: io.get(`${p}.controlnet_mid`) });
    const off = await u.runner.run({ ...base, controlResiduals: residuals('step0') });
    const c1 = close(off.data, io.get('step0.noise_pred_uncond_text').data);
    assert.ok(c1.ok, `without mask: ${c1.err} > ${c1.allowed}`);
    const on = await u.runner.run({ ...base, controlResiduals: residuals('maskon.step0'), regionMask: maskFromImage(io) });
    const c2 = close(on.data, io.get('maskon.step0.noise_pred_uncond_text').data);
    assert.ok(c2.ok, `with mask: ${c2.err} > ${c2.allowed}`);
  } finally {
    io.close();
    await u.runner.dispose();
    u.close();
  }
});
