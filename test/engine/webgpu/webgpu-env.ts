// The WebGPU tests run on whatever Vulkan driver the host has; without a GPU, on SwiftShader from Debian's
// chromium package (.ci/run installs it). Importing this module points the Vulkan loader at SwiftShader
// when VK_ICD_FILENAMES is unset — on the main thread, before any session, because the loader reads it once
// per process. webgpuReady() says why the GPU path cannot run here; requireWebGpu() turns that into a loud
// failure in CI (CI=true) and a loud skip elsewhere, never a silent pass.
import { test, type TestContext } from 'node:test';
import { findSwiftShaderIcd } from '../../../src/engine/onnx/provider.js';
import { describeExecutionProvider, type ProviderInfo } from '../../../src/engine/onnx/provider-probe.js';

if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES) {
  const icd = findSwiftShaderIcd();
  if (icd) process.env.VK_ICD_FILENAMES = icd;
}

let ready: Promise<ProviderInfo | Error> | undefined;

/** The WebGPU provider's description, or why it cannot start here. */
export function webgpuReady(): Promise<ProviderInfo | Error> {
  ready ??= describeExecutionProvider('webgpu').catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  return ready;
}

/**
 * Call first in a WebGPU test: returns false (after saying why, loudly) when no adapter is available and
 * this is not CI; throws in CI, where .ci/run installs SwiftShader, so a missing driver fails the suite.
 */
export async function requireWebGpu(t: TestContext): Promise<boolean> {
  const r = await webgpuReady();
  if (!(r instanceof Error)) return true;
  const why = `NO WEBGPU ADAPTER — the GPU path was NOT tested: ${r.message}`;
  if (process.env.CI === 'true') throw new Error(why);
  console.error(`\n*** ${why}\n`);
  t.skip(why);
  return false;
}

/** A test that needs the WebGPU provider. */
export function webgpuTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, async (t) => {
    if (await requireWebGpu(t)) await fn(t);
  });
}
