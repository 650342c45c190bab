// Compile-through-the-cache-then-open, shared by the UNet, ControlNet and Resampler runners, and
// small host-tensor helpers for their feeds.
import {
  compileCached, createSession, fingerprintFiles, openHeld, type AttentionMode, type ExecutionProvider, type ModelDef, type Session, type SessionOptions,
} from '../onnx/index.js';
import type { FloatDType, HostTensor } from '../onnx/dtype.js';
import { defaultExecutionProvider, graphChoicesFor } from '../onnx/provider.js';

export interface NetLoadOptions {
  /** Where compiled models are kept (e.g. $LIKENESS_HOME/cache/onnx). */
  cacheDir: string;
  /** Compute type; float32 on CPU (the default), float16 for GPUs. Inputs and outputs stay float32. */
  dtype?: FloatDType;
  session?: SessionOptions;
  /** How attention is written; default attentionModeFor(the session's execution provider). */
  attention?: AttentionMode;
}

/**
 * The default attention form per execution provider (the process default, LIKENESS_EP, when none is
 * named): graphChoicesFor in onnx/provider.ts, where every per-provider graph choice is made and argued.
 */
export function attentionModeFor(executionProvider: ExecutionProvider = defaultExecutionProvider()): AttentionMode {
  return graphChoicesFor(executionProvider).attention;
}

export interface CompiledNet {
  session: Session;
  modelPath: string;
  /** The model came from the cache (nothing was built). */
  cacheHit: boolean;
}

/** Builds (once per weights + config) and opens the model. */
export async function compileAndOpen(
  options: NetLoadOptions,
  key: { net: string; weightsHash: string; config: unknown },
  build: () => ModelDef,
): Promise<CompiledNet> {
  const compiled = await compileCached(options.cacheDir, { ...key, dtype: options.dtype ?? 'float32' }, build);
  const session = await openHeld(compiled, (path, extra) => createSession(path, { ...options.session, ...extra }));
  return { session, modelPath: compiled.modelPath, cacheHit: compiled.hit };
}

/** A cache identity for weight files (size + sampled SHA-256 of each). */
export function weightsHashOf(paths: readonly string[]): Promise<string> {
  return fingerprintFiles(paths);
}

export type F32 = HostTensor<'float32'>;

export function f32(dims: readonly number[], data?: Float32Array): F32 {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data && data.length !== n) throw new Error(`${data.length} values for dims [${dims.join(', ')}]`);
  return { dtype: 'float32', dims: [...dims], data: data ?? new Float32Array(n) };
}

/** A float32 output of a run. */
export function outputF32(outputs: Record<string, HostTensor>, name: string): F32 {
  const t = outputs[name];
  if (!t) throw new Error(`the model returned no ${name}`);
  if (t.dtype !== 'float32') throw new Error(`output ${name} is ${t.dtype}, expected float32`);
  return t as F32;
}

/** A timestep as the graphs take it: [1] (broadcast over the batch) or [B]; a number or a 0-d tensor becomes [1]. */
export function timestepFeed(t: number | F32): F32 {
  if (typeof t === 'number') return f32([1], Float32Array.of(t));
  return t.dims.length === 0 ? f32([1], t.data) : t;
}
