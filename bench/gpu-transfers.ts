// Bytes copied between host and device per denoising step of the InstantID pipeline (smoke set, random
// weights) on the process's execution provider (LIKENESS_EP; run it with webgpu). Prints one table:
//   size         latent size in pixels
//   prep         bytes across before the first step: prompt encoding (both CLIP encoders, both CFG
//                branches) and the Resampler's face tokens
//   per step     median bytes across per denoising step: to the device (feeds), from it (outputs)
//   decode       bytes across for the VAE decode
// The pipelines still feed every step from the host (latents, text embeddings, ControlNet residuals);
// DeviceTensor chaining (onnx/session.ts) is what will bring "per step" down to the latents.
// Run: LIKENESS_EP=webgpu VK_ICD_FILENAMES=… node --import tsx bench/gpu-transfers.ts [--size 64] [--steps 2]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { copiedBytes, defaultExecutionProvider, findSwiftShaderIcd, resetCopiedBytes } from '../src/engine/onnx/index.js';
import { describeExecutionProvider } from '../src/engine/onnx/provider-probe.js';
import { InstantIdPipeline } from '../src/engine/pipelines/instantid.js';
import { writeSmokeInstantIdSet } from '../src/engine/smoke-instantid.js';

const { values } = parseArgs({ options: { size: { type: 'string' }, steps: { type: 'string' } } });
const size = Number(values.size ?? 64);
const steps = Number(values.steps ?? 2);
if (defaultExecutionProvider() === 'webgpu' && !process.env.VK_ICD_FILENAMES) {
  const icd = findSwiftShaderIcd();
  if (icd) process.env.VK_ICD_FILENAMES = icd;
}
const provider = await describeExecutionProvider();
const home = mkdtempSync(join(tmpdir(), 'likeness-gpu-transfers-'));
const mib = (n: number): string => `${(n / 1048576).toFixed(2)} MiB`;
try {
  const set = await writeSmokeInstantIdSet(home, {});
  const pipeline = await InstantIdPipeline.load(
    { model: set.model, identityNet: set.identityNet, ipAdapter: set.ipAdapter },
    { cacheDir: join(home, 'cache'), threads: 1 },
  );
  const kps: { data: Uint8Array; width: number; height: number; channels: 3 } = { data: new Uint8Array(size * size * 3), width: size, height: size, channels: 3 };
  const perStep: { to: number; from: number }[] = [];
  let text = { to: 0, from: 0 }; // prep
  let last = { to: 0, from: 0 };
  resetCopiedBytes();
  const snap = (): { to: number; from: number } => ({ to: copiedBytes.toDevice, from: copiedBytes.fromDevice });
  const diff = (a: { to: number; from: number }, b: { to: number; from: number }) => ({ to: a.to - b.to, from: a.from - b.from });
  await pipeline.run({
    faceEmbedding: Float32Array.from({ length: 512 }, (_, i) => Math.sin(i)),
    kpsImage: kps, prompt: 'a portrait', steps, seed: 1,
    trace: (name) => {
      // Traced once the prompt is encoded and the face embedding projected, before the first step.
      if (name === 'timesteps') { text = snap(); last = text; }
    },
    onProgress: () => { const now = snap(); perStep.push(diff(now, last)); last = now; },
  });
  const decode = diff(snap(), last);
  await pipeline.dispose();
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`provider: ${provider.summary}`);
  console.log('| size | prep (to / from) | per step to device | per step from device | decode (to / from) |');
  console.log('| --- | --- | --- | --- | --- |');
  console.log(`| ${size}² | ${mib(text.to)} / ${mib(text.from)} | ${mib(median(perStep.map((s) => s.to)))} | ${mib(median(perStep.map((s) => s.from)))} | ${mib(decode.to)} / ${mib(decode.from)} |`);
} finally {
  rmSync(home, { recursive: true, force: true });
}
