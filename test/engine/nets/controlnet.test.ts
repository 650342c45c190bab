// ControlNet graphs: the golden, the parameter list, the runtime scale, and the `_full` pipeline's
// two nets (IdentityNet fed face tokens; a second F16 ControlNet of another config fed the text)
// with and without the face-region mask.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { createControlNetRunner, loadControlNet, sumResiduals, type ControlNetRunner } from '../../../src/engine/nets/controlnet-runner.js';
import { f32, weightsHashOf, type F32 } from '../../../src/engine/nets/net-session.js';
import { openSources } from '../../../src/engine/nets/sdxl-weights.js';
import { parseControlNetConfig } from '../../../src/engine/nets/unet-config.js';
import { controlNetWeightShapes } from '../../../src/engine/nets/unet-shapes.js';
import { golden } from '../../helpers/paths.js';
import { cat, caseJson, close, goldenIo, maxAbs, maxAbsDiff, tempDir } from './fixtures.js';

const tmp = tempDir('likeness-controlnet-');
after(() => tmp.remove());
const cacheDir = join(tmp.dir, 'cache');
const session = { intraOpThreads: 1 };
const identityNetPath = join(golden('controlnet'), 'weights.safetensors');
const net2Path = join(golden('instantid-pipeline-multicontrolnet'), 'controlnet2.fp16.safetensors');
const net2Config = (caseJson('instantid-pipeline-multicontrolnet').config as Record<string, unknown>).controlnet2;

async function controlnet(path: string, config: unknown, mask = false, guessMode = false): Promise<{ runner: ControlNetRunner; close(): void }> {
  const file = openSources([path]);
  const runner = await createControlNetRunner({ config, weights: file.source, weightsHash: await weightsHashOf([path]) }, { cacheDir, session, mask, guessMode });
  return { runner, close: () => file.close() };
}

test('golden controlnet: every residual matches diffusers at conditioning_scale 0.8', async () => {
  const r = await evaluateCase(golden('controlnet'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('the parameter lists of both configs are exactly their checkpoints\' names and shapes (F16 file included)', () => {
  for (const [path, config] of [[identityNetPath, caseJson('controlnet').config], [net2Path, net2Config]] as const) {
    const shapes = controlNetWeightShapes(parseControlNetConfig(config));
    const file = openSources([path]);
    try {
      const names = file.files[0]!.names().sort();
      assert.deepEqual([...shapes.keys()].sort(), names);
      for (const n of names) assert.deepEqual(shapes.get(n), file.source.info(n).shape, n);
    } finally {
      file.close();
    }
  }
});

test('conditioning_scale is a runtime input that scales every residual', async () => {
  const io = goldenIo('controlnet');
  const net = await controlnet(identityNetPath, caseJson('controlnet').config);
  try {
    const x = {
      sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: io.get('encoder_hidden_states'),
      controlnetCond: io.get('controlnet_cond'), textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids'),
    };
    const full = await net.runner.run({ ...x, conditioningScale: 0.8 });
    const half = await net.runner.run({ ...x, conditioningScale: 0.4 });
    for (const [a, b] of [...full.down.map((d, i) => [d, half.down[i]!] as const), [full.mid, half.mid] as const]) {
      assert.ok(maxAbsDiff(a.data.map((v) => v / 2), b.data) <= 1e-6 * maxAbs(a.data));
    }
    assert.ok(close(full.mid.data, io.get('mid_block_res_sample').data).ok);
  } finally {
    io.close();
    await net.runner.dispose();
    net.close();
  }
});

test('guess_mode ramps residual i by logspace(-1, 0, n + 1)[i] and keeps the mid', async () => {
  const io = goldenIo('controlnet');
  const plain = await controlnet(identityNetPath, caseJson('controlnet').config);
  const guess = await controlnet(identityNetPath, caseJson('controlnet').config, false, true);
  try {
    const x = {
      sample: io.get('sample'), timestep: io.get('timestep'), encoderHiddenStates: io.get('encoder_hidden_states'),
      controlnetCond: io.get('controlnet_cond'), textEmbeds: io.get('text_embeds'), timeIds: io.get('time_ids'), conditioningScale: 0.8,
    };
    const a = await plain.runner.run(x);
    const b = await guess.runner.run(x);
    const n = a.down.length;
    a.down.forEach((d, i) => {
      const ramp = 10 ** (-1 + i / n);
      assert.ok(maxAbsDiff(d.data.map((v) => v * ramp), b.down[i]!.data) <= 1e-6 * maxAbs(d.data), `residual ${i}`);
    });
    assert.ok(maxAbsDiff(a.mid.data, b.mid.data) <= 1e-6 * maxAbs(a.mid.data));
  } finally {
    io.close();
    for (const n of [plain, guess]) { await n.runner.dispose(); n.close(); }
  }
});

/** The `_full` pipeline's step-0 inputs for both nets. */
function pipelineStep0(io: ReturnType<typeof goldenIo>) {
  const two = (t: F32): F32 => cat([t, t], 0);
  const common = {
    sample: io.get('step0.latent_model_input'),
    timestep: f32([1], io.get('timesteps').data.slice(0, 1)),
    textEmbeds: cat([io.get('negative_pooled_prompt_embeds'), io.get('pooled_prompt_embeds')], 0),
    timeIds: io.get('add_time_ids'),
  };
  return {
    identityNet: { ...common, encoderHiddenStates: io.get('prompt_image_emb'), controlnetCond: two(io.image('kps_image_uint8')), conditioningScale: 0.8 },
    net2: { ...common, encoderHiddenStates: cat([io.get('negative_prompt_embeds'), io.get('prompt_embeds')], 0), controlnetCond: two(io.image('canny_image_uint8')), conditioningScale: 0.4 },
  };
}

function assertClose(actual: F32, expected: F32, what: string): void {
  const c = close(actual.data, expected.data);
  assert.ok(c.ok, `${what}: ${c.err} > ${c.allowed}`);
}

test('_full pipeline step 0: IdentityNet (face tokens, keypoint image) and an F16 canny net of another config (text) match', async () => {
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  const idNet = await controlnet(identityNetPath, caseJson('controlnet').config);
  const net2 = await controlnet(net2Path, net2Config);
  try {
    const x = pipelineStep0(io);
    const a = await idNet.runner.run(x.identityNet);
    const b = await net2.runner.run(x.net2);
    a.down.forEach((d, j) => assertClose(d, io.get(`step0.identitynet_down_${j}`), `identitynet down ${j}`));
    assertClose(a.mid, io.get('step0.identitynet_mid'), 'identitynet mid');
    assertClose(b.mid, io.get('step0.controlnet2_mid'), 'controlnet2 mid');
    const sum = sumResiduals([a, b]);
    sum.down.forEach((d, j) => assertClose(d, io.get(`step0.controlnet_down_${j}`), `summed down ${j}`));
    assertClose(sum.mid, io.get('step0.controlnet_mid'), 'summed mid');
  } finally {
    io.close();
    for (const n of [idNet, net2]) { await n.runner.dispose(); n.close(); }
  }
});

test('the face-region mask multiplies IdentityNet\'s residuals as the _full pipeline does (mid takes the /32 map, broadcast)', async () => {
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  const idNet = await controlnet(identityNetPath, caseJson('controlnet').config, true);
  const net2 = await controlnet(net2Path, net2Config);
  try {
    const x = pipelineStep0(io);
    const img = io.image('control_mask_uint8');
    const [, , h, w] = img.dims as number[];
    const mask = f32([1, 1, h!, w!], img.data.slice(0, h! * w!));
    const sum = sumResiduals([await idNet.runner.run({ ...x.identityNet, mask }), await net2.runner.run(x.net2)]);
    sum.down.forEach((d, j) => assertClose(d, io.get(`maskon.step0.controlnet_down_${j}`), `masked down ${j}`));
    assertClose(sum.mid, io.get('maskon.step0.controlnet_mid'), 'masked mid');
    const unmasked = await idNet.runner.run(x.identityNet); // mask left out = ones
    assertClose(unmasked.mid, io.get('step0.identitynet_mid'), 'mask left out');
  } finally {
    io.close();
    for (const n of [idNet, net2]) { await n.runner.dispose(); n.close(); }
  }
});

test('loadControlNet reads a diffusers folder with only an fp16 weight file', async () => {
  const dir = join(tmp.dir, 'canny-net');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(net2Config));
  symlinkSync(net2Path, join(dir, 'diffusion_pytorch_model.fp16.safetensors'));
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  const runner = await loadControlNet(dir, { cacheDir, session });
  try {
    assertClose((await runner.run(pipelineStep0(io).net2)).mid, io.get('step0.controlnet2_mid'), 'controlnet2 mid');
  } finally {
    io.close();
    await runner.dispose();
  }
});
