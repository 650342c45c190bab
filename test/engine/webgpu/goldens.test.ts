// The net goldens on the WebGPU provider, with the CPU's tolerances: every net kind once (the UNet with
// text_time sinusoids, ControlNet, VAE encoder+decoder, CLIP text encoder, InstantID's Resampler and its
// IP-Adapter UNet, the OpenPose body net). `likeness golden --ep webgpu` runs all cases; this is the subset CI keeps in budget.
// Not depth-anything: it passes on WebGPU (likeness golden --ep webgpu) but takes ~200 s of CPU on SwiftShader.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { setDefaultExecutionProvider } from '../../../src/engine/onnx/provider.js';
import { goldensDir } from '../../helpers/paths.js';
import { webgpuTest } from './webgpu-env.js';

setDefaultExecutionProvider('webgpu'); // this test file's process: every session the evaluators open

const NET_CASES = ['unet-sdxl', 'controlnet', 'vae', 'clip-text-l', 'instantid-resampler', 'instantid-ipadapter-unet', 'openpose-body-net'];

for (const name of NET_CASES) {
  webgpuTest(`golden ${name} passes on the WebGPU provider with the CPU's tolerances`, async () => {
    const r = await evaluateCase(join(goldensDir, name));
    assert.equal(r.status, 'PASS', formatResult(r, true));
  });
}
