// Messages between the main thread (session.ts) and the ORT worker (session-worker.ts).
import type { DType, HostArray } from './dtype.js';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda' | 'tensorrt';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** What the worker needs to create an InferenceSession. */
export interface WorkerSessionOptions {
  executionProvider: ExecutionProvider;
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  deviceId?: number;
  /** Fail instead of silently running unsupported nodes on the CPU (GPU providers). */
  disableCpuFallback?: boolean;
  /** webgpu: these nodes run on the CPU provider (ORT's forceCpuNodeNames). */
  forceCpuNodes?: string[];
  /** Fatal errors only in ORT's log (a probe that is expected to fail). */
  quiet?: boolean;
  /** GPU providers: outputs that stay on the device ('gpu-buffer'): all of them, or these names. */
  outputsOnDevice?: true | string[];
  /** cpu: the cache entry folder where ORT's optimised copies with pre-packed weights live (packed-copy.ts). */
  packedCopy?: string;
}

/** A tensor the worker keeps on the device; the main thread holds its handle. */
export interface WireDeviceTensor {
  dtype: DType;
  dims: number[];
  handle: number;
  bytes: number;
}

export interface WireTensor {
  dtype: DType;
  dims: number[];
  data: HostArray;
}

export interface ValueMeta {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

export interface SessionInfo {
  session: number;
  inputs: ValueMeta[];
  outputs: ValueMeta[];
}

export type Request =
  | { id: number; type: 'create'; model: string | Uint8Array; options: WorkerSessionOptions }
  | { id: number; type: 'run'; session: number; feeds: Record<string, WireTensor | WireDeviceTensor>; fetches?: string[] }
  /** Copies device tensors back to the host, through a session whose outputs are on the CPU. */
  | { id: number; type: 'read'; handles: number[] }
  | { id: number; type: 'free'; handles: number[] }
  | { id: number; type: 'release'; session: number }
  | { id: number; type: 'shutdown' };

export interface WireError {
  code: string;
  message: string;
}

export type Reply =
  | { id: number; ok: true; result: SessionInfo | Record<string, WireTensor | WireDeviceTensor> | WireTensor[] | null }
  | { id: number; ok: false; error: WireError };

/** The buffers of `arrays` that can be moved instead of copied (whole, non-shared buffers). */
export function transferables(arrays: Iterable<HostArray>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    const buf = a.buffer;
    if (buf instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === buf.byteLength) out.add(buf);
  }
  return [...out];
}
