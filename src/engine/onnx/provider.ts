// Execution providers as a setting. LIKENESS_EP (or a verb's --ep) names the provider every engine
// session runs on; what the graphs look like on each provider (attention form, float type) is decided
// here and nowhere else; and a provider that cannot start says what is missing — the engine never
// falls back to the CPU on its own.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { EngineError } from '../errors.js';
import type { FloatDType } from './dtype.js';
import type { AttentionMode } from './graph-core.js';
import type { ExecutionProvider } from './session-protocol.js';

export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu', 'cuda', 'tensorrt'];

/** Parses a provider name (from LIKENESS_EP, --ep or a config), naming the accepted ones when it is wrong. */
export function parseExecutionProvider(value: string, from = 'LIKENESS_EP'): ExecutionProvider {
  const v = value.trim().toLowerCase();
  if ((EXECUTION_PROVIDERS as readonly string[]).includes(v)) return v as ExecutionProvider;
  throw new EngineError('bad_request', `${from} must be one of ${EXECUTION_PROVIDERS.join(', ')}; got ${JSON.stringify(value)}`);
}

/**
 * The provider sessions use when their options name none: LIKENESS_EP, else cpu. Read each time, so
 * a verb's --ep (setDefaultExecutionProvider) reaches every session, also those made in worker threads
 * started after it.
 */
export function defaultExecutionProvider(): ExecutionProvider {
  const raw = process.env.LIKENESS_EP;
  return raw === undefined || raw === '' ? 'cpu' : parseExecutionProvider(raw);
}

/**
 * The provider for face analysis (SCRFD + ArcFace, small nets run once per photo): LIKENESS_FACE_EP, else
 * the engine's. On a software adapter (SwiftShader) the detector at 640² takes most of a 64² task, so CI
 * runs it on the CPU while the diffusion nets run on WebGPU.
 */
export function faceExecutionProvider(): ExecutionProvider {
  const raw = process.env.LIKENESS_FACE_EP;
  return raw === undefined || raw === '' ? defaultExecutionProvider() : parseExecutionProvider(raw, 'LIKENESS_FACE_EP');
}

/** Sets the process-wide provider (LIKENESS_EP) — for --ep, before any session or engine thread starts. */
export function setDefaultExecutionProvider(ep: ExecutionProvider): void {
  process.env.LIKENESS_EP = ep;
}

/** How graphs are written for a provider. One table, so every net makes the same choice. */
export interface GraphChoices {
  /**
   * cpu: com.microsoft.MultiHeadAttention (ORT's CPU kernel works through the keys in blocks instead of
   * holding the [B, heads, n, n] scores: 2.9 → 1.3 GB peak at 1024², docs/benchmarks.md).
   * webgpu: MatMul/Softmax/MatMul — ORT 1.30's WebGPU MultiHeadAttention is wrong past a sequence of
   * about 16 (test/engine/webgpu/ort-faults.test.ts keeps the single-op repro).
   * cuda / tensorrt: plain as well, until measured on a GPU host.
   */
  attention: AttentionMode;
  /** The compute type a pipeline uses unless told: float32 everywhere (fp16 is opt-in, see README). */
  dtype: FloatDType;
  /**
   * Convs whose input channels are not a multiple of this get zero channels added (input and weight):
   * ORT 1.30's WebGPU 3×3 Conv is wrong for e.g. 6 input channels (ort-faults.test.ts). 1 = as they are.
   */
  convChannelMultiple: number;
  /**
   * LoRAs as run-time low-rank branches (factor inputs with a symbolic rank, rank 0 when unused) rather than
   * fused weights. cpu only: on webgpu a served task on the slotted graphs ended the process with SIGSEGV
   * (exit 139, test/engine/webgpu/instantid-service.test.ts) — fused there until that is isolated; cuda /
   * tensorrt not yet measured.
   */
  loraBranches: boolean;
}

export function graphChoicesFor(ep: ExecutionProvider = defaultExecutionProvider()): GraphChoices {
  switch (ep) {
    case 'cpu': return { attention: 'fused', dtype: 'float32', convChannelMultiple: 1, loraBranches: true };
    case 'webgpu': return { attention: 'plain', dtype: 'float32', convChannelMultiple: 4, loraBranches: false };
    case 'cuda':
    case 'tensorrt': return { attention: 'plain', dtype: 'float32', convChannelMultiple: 1, loraBranches: false };
  }
}

// ---------------------------------------------------------------------------------------------------
// WebGPU (Dawn over Vulkan)

/** Where Debian's chromium package puts SwiftShader's Vulkan ICD (a software Vulkan driver). */
export const SWIFTSHADER_ICD_PATHS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

/** The SwiftShader ICD file on this machine, if chromium is installed. */
export function findSwiftShaderIcd(): string | undefined {
  return SWIFTSHADER_ICD_PATHS.find((p) => existsSync(p));
}

/** The Vulkan driver files the loader is told to use (VK_ICD_FILENAMES / VK_DRIVER_FILES), with the library each names. */
export function vulkanIcds(): { file: string; library?: string }[] {
  const raw = process.env.VK_DRIVER_FILES || process.env.VK_ICD_FILENAMES;
  if (!raw) return [];
  return raw.split(delimiter).filter(Boolean).map((file) => {
    try {
      const json = JSON.parse(readFileSync(file, 'utf8')) as { ICD?: { library_path?: unknown } };
      const lib = json.ICD?.library_path;
      return typeof lib === 'string' ? { file, library: resolve(dirname(file), lib) } : { file };
    } catch {
      return { file };
    }
  });
}

/** What to do when Dawn finds no adapter. */
export function webgpuAdapterHint(): string {
  const icd = findSwiftShaderIcd();
  const set = vulkanIcds();
  const told = set.length ? `VK_ICD_FILENAMES is ${set.map((s) => s.file).join(delimiter)}` : 'VK_ICD_FILENAMES is not set';
  return `Dawn found no Vulkan adapter (${told}). On a GPU host install the GPU's Vulkan driver (NVIDIA: the driver's ` +
    'libnvidia-vulkan / nvidia_icd.json; AMD/Intel: mesa-vulkan-drivers) and libvulkan1. Without a GPU, use the software driver ' +
    (icd ? `that is installed here: VK_ICD_FILENAMES=${icd}` : 'from Debian\'s chromium package: apt-get install chromium libvulkan1, then VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json');
}

// ---------------------------------------------------------------------------------------------------
// CUDA: which of the libraries onnxruntime's CUDA provider loads are missing

/** The shared libraries ORT 1.30's CUDA provider needs (CUDA 12, cuDNN 9), by soname. */
export const CUDA_LIBRARIES = ['libcudart.so.12', 'libcublas.so.12', 'libcublasLt.so.12', 'libcufft.so.11', 'libcudnn.so.9'];
export const TENSORRT_LIBRARIES = ['libnvinfer.so.10', 'libnvinfer_plugin.so.10', 'libnvonnxparser.so.10'];

function ldconfigNames(): Set<string> {
  try {
    const out = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    return new Set(out.split('\n').map((l) => l.trim().split(' ')[0] ?? '').filter(Boolean));
  } catch {
    return new Set();
  }
}

/** The libraries in `names` that neither LD_LIBRARY_PATH nor the linker cache (ldconfig -p) has. Linux only. */
export function missingSharedLibraries(names: readonly string[]): string[] {
  if (process.platform !== 'linux') return [];
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const cache = ldconfigNames();
  return names.filter((n) => !cache.has(n) && !dirs.some((d) => existsSync(join(d, n))));
}
