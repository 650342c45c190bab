// What the service and the CLI say about the provider at start: a tiny model is run on it (so a provider
// that cannot start fails here, with what is missing, before any task), and for WebGPU what the adapter
// can do. onnxruntime-node does not hand Dawn's adapter info to JavaScript, so the adapter is named by
// the Vulkan driver the loader was given (VK_ICD_FILENAMES) and by what the probe measured.
import { basename } from 'node:path';
import { EngineError } from '../errors.js';
import { convertFloat } from './dtype.js';
import { GraphBuilder } from './graph.js';
import { defaultExecutionProvider, vulkanIcds } from './provider.js';
import { encodeModel } from './serialize.js';
import { createSession, type OrtWorker } from './session.js';
import type { ExecutionProvider } from './session-protocol.js';

export interface ProviderInfo {
  provider: ExecutionProvider;
  /** The device, as far as it can be told: "CPU", the Vulkan driver for webgpu, "CUDA device N". */
  adapter: string;
  /** webgpu: the adapter runs float16 kernels (WebGPU's shader-f16 feature); cuda/tensorrt: true. */
  float16: boolean;
  /** One line for logs. */
  summary: string;
}

const probes = new Map<ExecutionProvider, Promise<ProviderInfo>>();

function vulkanDriverName(): string {
  const icds = vulkanIcds();
  if (icds.length === 0) return 'Vulkan driver found by the loader (VK_ICD_FILENAMES not set)';
  return icds.map(({ file, library }) => {
    const lib = library ? basename(library) : basename(file);
    return /swiftshader/i.test(lib) ? `SwiftShader (software Vulkan, ${lib})` : lib;
  }).join(', ');
}

async function probeModel(dtype: 'float32' | 'float16'): Promise<Uint8Array> {
  const g = new GraphBuilder();
  const x = g.input('x', [8, 8], dtype);
  g.output(g.add(g.matmul(x, x), x), 'y');
  return encodeModel(g.build());
}

/** Runs (x·x + x) on the provider with CPU fallback off; true if it ran and gave the right numbers. */
async function runsOn(ep: ExecutionProvider, dtype: 'float32' | 'float16', worker?: OrtWorker): Promise<boolean> {
  const session = await createSession(await probeModel(dtype), {
    executionProvider: ep, ...(ep === 'cpu' ? {} : { disableCpuFallback: true }), ...(dtype === 'float16' ? { quiet: true } : {}), ...(worker ? { worker } : {}),
  });
  try {
    const x = Float32Array.from({ length: 64 }, (_, i) => ((i % 7) - 3) / 4); // exact in float16 too
    const data = convertFloat(x, 'float32', dtype);
    const out = (await session.run({ x: { dtype, dims: [8, 8], data } })).y!;
    const got = convertFloat(out.data as Float32Array | Uint16Array, dtype, 'float32');
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) {
        let s = x[i * 8 + j]!;
        for (let k = 0; k < 8; k++) s += x[i * 8 + k]! * x[k * 8 + j]!;
        if (Math.abs(got[i * 8 + j]! - s) > 1e-2) return false;
      }
    }
    return true;
  } finally {
    await session.dispose();
  }
}

async function probe(ep: ExecutionProvider, worker?: OrtWorker): Promise<ProviderInfo> {
  const started = performance.now();
  let ok: boolean;
  try {
    ok = await runsOn(ep, 'float32', worker);
  } catch (e) {
    if (e instanceof EngineError) throw new EngineError(e.code === 'ort_session_failed' ? 'ort_ep_unavailable' : e.code, `execution provider ${ep} cannot start: ${e.message}`);
    throw e;
  }
  if (!ok) throw new EngineError('ort_ep_unavailable', `execution provider ${ep} started but computed a wrong 8×8 MatMul: its device or driver is faulty`);
  let float16 = ep === 'cuda' || ep === 'tensorrt';
  if (ep === 'webgpu') float16 = await runsOn(ep, 'float16', worker).catch(() => false);
  const adapter = ep === 'cpu' ? 'CPU' : ep === 'webgpu' ? vulkanDriverName() : `CUDA device ${process.env.CUDA_VISIBLE_DEVICES ?? '0'}`;
  const ms = Math.round(performance.now() - started);
  const f16 = ep === 'webgpu' ? `, float16 kernels ${float16 ? 'yes (shader-f16)' : 'no (no shader-f16)'}` : '';
  return { provider: ep, adapter, float16, summary: `${ep} on ${adapter}${f16} (probe ${ms} ms)` };
}

/**
 * Starts the provider (the process default unless named) and describes it; the result is kept per
 * provider. Throws EngineError('ort_ep_unavailable') naming what is missing; never falls back to the CPU.
 */
export function describeExecutionProvider(ep: ExecutionProvider = defaultExecutionProvider(), worker?: OrtWorker): Promise<ProviderInfo> {
  if (worker) return probe(ep, worker);
  let p = probes.get(ep);
  if (!p) {
    p = probe(ep);
    probes.set(ep, p);
    p.catch(() => probes.delete(ep));
  }
  return p;
}
