// A denoising step as ONE graph (UNet + IP-Adapter + IdentityNet + a second ControlNet), as the GPU
// path wants it: it reproduces the `_full` pipeline's step-0 noise prediction with and without the mask.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compileCached, createSession } from '../../../src/engine/onnx/index.js';
import { f32, outputF32, type F32 } from '../../../src/engine/nets/net-session.js';
import { openSources } from '../../../src/engine/nets/sdxl-weights.js';
import { DENOISER_IO, buildDenoiserGraph } from '../../../src/engine/nets/unet-controlnet.js';
import { parseControlNetConfig, parseUNetConfig } from '../../../src/engine/nets/unet-config.js';
import { ipAdapterSource } from '../../../src/engine/nets/unet-runner.js';
import { golden } from '../../helpers/paths.js';
import { cat, caseJson, close, goldenIo, tempDir } from './fixtures.js';

const tmp = tempDir('likeness-denoiser-');
after(() => tmp.remove());

test('UNet + IP-Adapter + IdentityNet + canny ControlNet in one graph match the _full pipeline\'s step 0 (mask off and on)', async () => {
  const files = openSources([join(golden('unet-sdxl'), 'weights.safetensors')]);
  const ip = openSources([join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin')]);
  const idNet = openSources([join(golden('controlnet'), 'weights.safetensors')]);
  const net2 = openSources([join(golden('instantid-pipeline-multicontrolnet'), 'controlnet2.fp16.safetensors')]);
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  try {
    const model = await compileCached(join(tmp.dir, 'cache'), { net: 'denoiser-test', weightsHash: 'goldens', dtype: 'float32', config: {} }, () => buildDenoiserGraph(
      files.source,
      parseUNetConfig(caseJson('unet-sdxl').config),
      [
        { weights: idNet.source, config: parseControlNetConfig(caseJson('controlnet').config), context: 'image_tokens', mask: true },
        { weights: net2.source, config: parseControlNetConfig((caseJson('instantid-pipeline-multicontrolnet').config as Record<string, unknown>).controlnet2), context: 'text' },
      ],
      { ipAdapter: { weights: ipAdapterSource(ip.source), numTokens: 4, regionMask: true } },
    ));
    const session = await createSession(model.modelPath, { intraOpThreads: 1 });
    try {
      const two = (t: F32): F32 => cat([t, t], 0);
      const maskImg = io.image('control_mask_uint8');
      const [, , h, w] = maskImg.dims as [number, number, number, number];
      const faceMask = f32([1, 1, h, w], maskImg.data.slice(0, h * w));
      const ones = f32([1, 1, h, w], new Float32Array(h * w).fill(1));
      const text = cat([io.get('negative_prompt_embeds'), io.get('prompt_embeds')], 0);
      const feeds = (mask: F32): Record<string, F32> => ({
        [DENOISER_IO.sample]: io.get('step0.latent_model_input'),
        [DENOISER_IO.timestep]: f32([1], io.get('timesteps').data.slice(0, 1)),
        [DENOISER_IO.context]: cat([text, io.get('prompt_image_emb')], 1),
        [DENOISER_IO.textEmbeds]: cat([io.get('negative_pooled_prompt_embeds'), io.get('pooled_prompt_embeds')], 0),
        [DENOISER_IO.timeIds]: io.get('add_time_ids'),
        [DENOISER_IO.ipScale]: f32([1], Float32Array.of(0.8)),
        [DENOISER_IO.regionMask]: mask,
        [DENOISER_IO.cond(0)]: two(io.image('kps_image_uint8')),
        [DENOISER_IO.scale(0)]: f32([1], Float32Array.of(0.8)),
        [DENOISER_IO.mask(0)]: mask,
        [DENOISER_IO.cond(1)]: two(io.image('canny_image_uint8')),
        [DENOISER_IO.scale(1)]: f32([1], Float32Array.of(0.4)),
      });
      for (const [mask, expected] of [[ones, 'step0.noise_pred_uncond_text'], [faceMask, 'maskon.step0.noise_pred_uncond_text']] as const) {
        const out = outputF32(await session.run(feeds(mask)), DENOISER_IO.output);
        const c = close(out.data, io.get(expected).data);
        assert.ok(c.ok, `${expected}: ${c.err} > ${c.allowed}`);
      }
    } finally {
      await session.dispose();
    }
  } finally {
    io.close();
    for (const f of [files, ip, idNet, net2]) f.close();
  }
});
