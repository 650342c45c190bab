// The WebGPU tests run on whatever Vulkan driver the host has; without a GPU, on SwiftShader from Debian's
// chromium package (.ci/run installs it). Importing this module points the Vulkan loader at SwiftShader
// when VK_ICD_FILENAMES is unset — on the main thread, before any session, because the loader reads it once
// per process. webgpuReady() says why the GPU path cannot run here; requireWebGpu() turns that into a
// failure that says what to install — everywhere, never a skip or a silent pass.
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
 * Call first in a WebGPU test: throws, saying what to install, when no adapter is available (the GPU
 * path cannot be tested then, and that is a failure, not a skip).
 */
export async function requireWebGpu(): Promise<void> {
  const r = await webgpuReady();
  if (r instanceof Error) {
    throw new Error(`NO WEBGPU ADAPTER — the GPU path cannot be tested: ${r.message}. ` +
      'Install a Vulkan driver: without a GPU, Debian\'s chromium and libvulkan1 (apt-get install chromium libvulkan1) bring SwiftShader, as .ci/run does.');
  }
}

/** A test that needs the WebGPU provider. */
export function webgpuTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, async (t) => {
    await requireWebGpu();
    await fn(t);
  });
}
