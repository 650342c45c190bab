// The worker thread that owns ONNX Runtime sessions. onnxruntime-node's run() is synchronous native
// code (engine-prior-art.md §1.7), so it must never run on the main thread's event loop. Requests are
// handled one at a time, in order; several sessions can live here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { DType, HostArray } from './dtype.js';
import { GraphBuilder } from './graph.js';
import { encodeModel } from './serialize.js';
import { lowerThisThreadForEngine } from '../thread-priority.js';
import { PACKED_PREFIX, PACKED_TMP_PREFIX, packedCopyTag } from './packed-copy.js';
import {
  transferables,
  type Reply, type Request, type SessionInfo, type ValueMeta, type WireDeviceTensor, type WireTensor, type WorkerSessionOptions,
} from './session-protocol.js';

const port = parentPort;
if (!port) throw new Error('session-worker.ts must run in a worker thread');
// Before any session exists: ORT's intra-op threads inherit this thread's (lower) priority.
lowerThisThreadForEngine();

const sessions = new Map<number, { session: ort.InferenceSession }>();
let nextSession = 1;
/** Tensors kept on the device (gpu-buffer outputs), by handle. */
const deviceTensors = new Map<number, ort.Tensor>();
let nextHandle = 1;

const OUTPUT_TYPES: Partial<Record<string, DType>> = {
  float32: 'float32', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool',
};

class WorkerError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function sessionOptions(o: WorkerSessionOptions): ort.InferenceSession.SessionOptions {
  const device = { deviceId: o.deviceId ?? 0 };
  const webgpu: ort.InferenceSession.WebGpuExecutionProviderOption = {
    name: 'webgpu', ...(o.forceCpuNodes?.length ? { forceCpuNodeNames: o.forceCpuNodes } : {}),
  };
  const providers: ort.InferenceSession.ExecutionProviderConfig[] =
    o.executionProvider === 'cuda' ? [{ name: 'cuda', ...device }]
      : o.executionProvider === 'tensorrt' ? [{ name: 'tensorrt', ...device }, { name: 'cuda', ...device }]
        : o.executionProvider === 'webgpu' ? [webgpu]
          : ['cpu'];
  // Errors only (3): ORT's shape warnings on dynamic-size inputs (SCRFD at other than 640, for one) are
  // expected and would flood the service's stderr; insightface sets the same level.
  const options: ort.InferenceSession.SessionOptions = { executionProviders: providers, logSeverityLevel: o.quiet ? 4 : 3 };
  if (o.intraOpThreads !== undefined) options.intraOpNumThreads = o.intraOpThreads;
  if (o.interOpThreads !== undefined) options.interOpNumThreads = o.interOpThreads;
  if (o.graphOptimizationLevel !== undefined) options.graphOptimizationLevel = o.graphOptimizationLevel;
  if (o.disableCpuFallback) options.extra = { session: { disable_cpu_ep_fallback: '1' } };
  if (o.outputsOnDevice) {
    options.preferredOutputLocation = o.outputsOnDevice === true
      ? 'gpu-buffer'
      : Object.fromEntries(o.outputsOnDevice.map((n) => [n, 'gpu-buffer' as const]));
  }
  return options;
}

function meta(list: readonly ort.InferenceSession.ValueMetadata[]): ValueMeta[] {
  return list.map((m) => (m.isTensor
    ? { name: m.name, dtype: m.type, shape: [...m.shape] }
    : { name: m.name, dtype: 'non-tensor', shape: [] }));
}

/**
 * A CPU session on a cache entry's model through its packed copy (packed-copy.ts): the copy when it is
 * there (optimised already, so optimisation off); else the plain model, writing the copy on the way.
 * Any trouble with the copy falls back to the plain model: a copy is only ever a faster way in.
 */
async function createPacked(model: string, entryDir: string, o: WorkerSessionOptions): Promise<ort.InferenceSession> {
  const dir = join(entryDir, `${PACKED_PREFIX}${packedCopyTag(o.graphOptimizationLevel)}`);
  const copy = join(dir, 'model.onnx');
  if (existsSync(copy)) {
    try {
      return await ort.InferenceSession.create(copy, { ...sessionOptions(o), graphOptimizationLevel: 'disabled' });
    } catch {
      rmSync(dir, { recursive: true, force: true }); // unreadable: written again below
    }
  }
  const tmp = join(entryDir, `${PACKED_TMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    mkdirSync(tmp);
    const base = sessionOptions(o);
    const session = await ort.InferenceSession.create(model, {
      ...base,
      optimizedModelFilePath: join(tmp, 'model.onnx'),
      extra: {
        ...(base.extra as Record<string, unknown> | undefined),
        session: {
          ...((base.extra as { session?: Record<string, string> } | undefined)?.session),
          optimized_model_external_initializers_file_name: 'weights.bin',
          optimized_model_external_initializers_min_size_in_bytes: '1024',
          save_external_prepacked_constant_initializers: '1',
        },
      },
    });
    try {
      renameSync(tmp, dir); // fails when another process got there first: theirs is as good
    } catch {
      rmSync(tmp, { recursive: true, force: true });
    }
    return session;
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // disk full, say: open the plain model as before
    return ort.InferenceSession.create(model, sessionOptions(o));
  }
}

async function create(model: string | Uint8Array, o: WorkerSessionOptions): Promise<SessionInfo> {
  let session: ort.InferenceSession;
  try {
    session = typeof model === 'string'
      ? o.packedCopy && o.executionProvider === 'cpu'
        ? await createPacked(model, o.packedCopy, o)
        : await ort.InferenceSession.create(model, sessionOptions(o))
      : await ort.InferenceSession.create(model, sessionOptions(o));
  } catch (e) {
    const where = typeof model === 'string' ? model : `${model.byteLength}-byte model`;
    const message = (e as Error).message;
    // A GPU provider that cannot load (missing CUDA/cuDNN/TensorRT libraries, no device or adapter) is not a model error.
    const providerFailed = o.executionProvider !== 'cpu' && /provider|cuda|cudnn|tensorrt|nvinfer|\.so|\.dll|device|adapter|webgpu|vulkan|dawn/i.test(message);
    const noAdapter = o.executionProvider === 'webgpu' && /adapter/i.test(message);
    throw new WorkerError(noAdapter ? 'ort_no_adapter' : providerFailed ? 'ort_ep_unavailable' : 'ort_session_failed',
      `could not create an ONNX Runtime session (${o.executionProvider}) for ${where}: ${message}`);
  }
  const id = nextSession++;
  sessions.set(id, { session });
  return { session: id, inputs: meta(session.inputMetadata), outputs: meta(session.outputMetadata) };
}

function deviceTensor(handle: number): ort.Tensor {
  const t = deviceTensors.get(handle);
  if (!t) throw new WorkerError('ort_tensor_freed', `device tensor ${handle} was freed`);
  return t;
}

async function run(id: number, feeds: Record<string, WireTensor | WireDeviceTensor>, fetches?: string[]): Promise<Record<string, WireTensor | WireDeviceTensor>> {
  const entry = sessions.get(id);
  if (!entry) throw new WorkerError('ort_session_closed', `session ${id} was released`);
  const inputs: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) inputs[name] = 'handle' in t ? deviceTensor(t.handle) : new ort.Tensor(t.dtype, t.data, t.dims);
  let results: ort.InferenceSession.OnnxValueMapType;
  try {
    results = fetches ? await entry.session.run(inputs, fetches) : await entry.session.run(inputs);
  } catch (e) {
    throw new WorkerError('ort_run_failed', `ONNX Runtime run failed: ${(e as Error).message}`);
  }
  const out: Record<string, WireTensor | WireDeviceTensor> = {};
  for (const [name, value] of Object.entries(results)) {
    const tensor = value as ort.Tensor;
    const dtype = OUTPUT_TYPES[tensor.type];
    if (!dtype) throw new WorkerError('ort_unsupported_type', `output ${name} has type ${tensor.type}, which the engine does not read`);
    if (tensor.location === 'gpu-buffer') {
      // Never tensor.data / getData() here: on a gpu-buffer tensor in onnxruntime-node it aborts the process.
      const handle = nextHandle++;
      deviceTensors.set(handle, tensor);
      out[name] = { dtype, dims: [...tensor.dims], handle, bytes: tensor.size * BYTES[dtype] };
    } else {
      out[name] = { dtype, dims: [...tensor.dims], data: tensor.data as HostArray };
    }
  }
  return out;
}

const BYTES: Record<DType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 };

/** Identity sessions with CPU outputs, one per (dtype, rank): the only safe way to read a gpu-buffer tensor. */
const readers = new Map<string, Promise<ort.InferenceSession>>();

async function reader(dtype: DType, rank: number): Promise<ort.InferenceSession> {
  const key = `${dtype}/${rank}`;
  let r = readers.get(key);
  if (!r) {
    const g = new GraphBuilder();
    const x = g.input('x', Array.from({ length: rank }, (_, i) => `d${i}`), dtype);
    g.output(g.op('Identity', [x], [{ dtype, shape: x.shape }])[0]!, 'y');
    r = encodeModel(g.build()).then((bytes) => ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'], logSeverityLevel: 3 }));
    readers.set(key, r);
  }
  return r;
}

async function read(handles: readonly number[]): Promise<WireTensor[]> {
  const out: WireTensor[] = [];
  for (const h of handles) {
    const t = deviceTensor(h);
    const dtype = OUTPUT_TYPES[t.type]!;
    const session = await reader(dtype, t.dims.length);
    const { y } = await session.run({ x: t });
    out.push({ dtype, dims: [...t.dims], data: (y as ort.Tensor).data as HostArray });
  }
  return out;
}

function free(handles: readonly number[]): void {
  for (const h of handles) {
    deviceTensors.get(h)?.dispose();
    deviceTensors.delete(h);
  }
}

async function handle(req: Request): Promise<{ result: Reply & { ok: true }; transfer: ArrayBuffer[] }> {
  switch (req.type) {
    case 'create':
      return { result: { id: req.id, ok: true, result: await create(req.model, req.options) }, transfer: [] };
    case 'run': {
      const outputs = await run(req.session, req.feeds, req.fetches);
      const host = Object.values(outputs).flatMap((t) => ('data' in t ? [t.data] : []));
      return { result: { id: req.id, ok: true, result: outputs }, transfer: transferables(host) };
    }
    case 'read': {
      const tensors = await read(req.handles);
      return { result: { id: req.id, ok: true, result: tensors }, transfer: transferables(tensors.map((t) => t.data)) };
    }
    case 'free':
      free(req.handles);
      return { result: { id: req.id, ok: true, result: null }, transfer: [] };
    case 'shutdown':
      throw new WorkerError('ort_error', 'shutdown is handled on receipt');
    case 'release': {
      const entry = sessions.get(req.session);
      sessions.delete(req.session);
      if (entry) await entry.session.release();
      return { result: { id: req.id, ok: true, result: null }, transfer: [] };
    }
  }
}

/** Releases every session and ends this thread, between runs (never inside one). */
async function shutdown(): Promise<void> {
  free([...deviceTensors.keys()]);
  for (const [id, entry] of sessions) {
    sessions.delete(id);
    await entry.session.release().catch(() => undefined);
  }
  process.exit(0); // in a worker: ends this thread only
}

// One request at a time: a run holds the thread anyway, and order is what callers expect.
// A shutdown request is seen as soon as the current run returns; queued requests are then dropped
// (the main thread has already failed them).
let queue = Promise.resolve();
let closing = false;
port.on('message', (req: Request) => {
  if (req.type === 'shutdown') {
    closing = true;
    queue = queue.then(shutdown);
    return;
  }
  queue = queue.then(async () => {
    if (closing) return;
    try {
      const { result, transfer } = await handle(req);
      port.postMessage(result, transfer);
    } catch (e) {
      const code = e instanceof WorkerError ? e.code : 'ort_error';
      const reply: Reply = { id: req.id, ok: false, error: { code, message: (e as Error).message ?? String(e) } };
      port.postMessage(reply);
    }
  });
});
