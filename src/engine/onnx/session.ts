// ONNX Runtime sessions, run off the main thread. A worker thread (session-worker.ts) owns the
// InferenceSessions; this side sends host tensors and gets host tensors back. The event loop keeps
// turning during a run: onnxruntime-node's run() is synchronous native code (engine-prior-art.md §1.7).
//
// Aborting: ORT cannot be interrupted mid-run from Node (RunOptions.terminate is web-only, §1.3).
// An AbortSignal rejects the pending run() at once and its result is dropped when it arrives, but the
// worker stays busy until ORT returns; later requests to the same worker wait behind it. For the same
// reason OrtWorker.terminate() waits for the run in progress, and a process that exits (process.exit)
// while a run is in progress may abort: let runs settle, or terminate workers, before exiting.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../errors.js';
import { numel, type DType, type HostArray, type HostTensor } from './dtype.js';
import {
  CUDA_LIBRARIES, TENSORRT_LIBRARIES, defaultExecutionProvider, missingSharedLibraries, webgpuAdapterHint,
} from './provider.js';
import {
  transferables,
  type ExecutionProvider, type GraphOptimizationLevel, type Reply, type Request, type SessionInfo, type ValueMeta,
  type WireDeviceTensor, type WireTensor, type WorkerSessionOptions,
} from './session-protocol.js';

export type { ExecutionProvider, GraphOptimizationLevel, ValueMeta };

export interface SessionOptions {
  /** Default: defaultExecutionProvider() (LIKENESS_EP, else cpu). */
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** GPU index for cuda / tensorrt. */
  deviceId?: number;
  /** Fail instead of silently running unsupported nodes on the CPU (useful in GPU tests). */
  disableCpuFallback?: boolean;
  /** The worker to create the session in; a process-wide shared worker by default. */
  worker?: OrtWorker;
  /** Only fatal errors in ORT's log (for probes that may fail). */
  quiet?: boolean;
  /** webgpu: node names to run on the CPU provider instead (a workaround for a faulty kernel). */
  forceCpuNodes?: readonly string[];
  /**
   * webgpu: outputs stay on the device (all, or these names) and come back from run() as DeviceTensor
   * handles that can be fed to the next run of any session in the same worker.
   */
  outputsOnDevice?: true | readonly string[];
  /**
   * cpu: the cache entry folder (the model's own) where ORT's optimised copy with pre-packed weights is
   * kept (packed-copy.ts): opened instead of the model when there, written on this open when not.
   * openHeld passes it for every cache entry unless LIKENESS_ORT_PACKED_COPY=off.
   */
  packedCopy?: string;
}

export interface RunOptions {
  /** Rejects the run at once (the worker still finishes it; see the file comment). */
  signal?: AbortSignal;
  /** Move the feeds' buffers to the worker instead of copying them (the caller's arrays become empty). */
  transfer?: boolean;
  /** Only these outputs. */
  outputs?: readonly string[];
}

/** A tensor kept on the device by the worker (a gpu-buffer output). Read it back with read(); free it when done. */
export class DeviceTensor {
  private freed = false;
  constructor(private readonly worker: OrtWorker, private readonly wire: WireDeviceTensor) {}
  get dtype(): DType { return this.wire.dtype; }
  get dims(): readonly number[] { return this.wire.dims; }
  get bytes(): number { return this.wire.bytes; }
  /** @internal the worker's handle */
  get handle(): number {
    if (this.freed) throw new EngineError('ort_tensor_freed', 'this device tensor was freed');
    return this.wire.handle;
  }
  /** Copies it to the host (through a session with CPU outputs; never getData() on the device tensor). */
  async read(): Promise<HostTensor> {
    const [t] = await this.worker.request<WireTensor[]>({ type: 'read', handles: [this.handle] });
    copiedBytes.fromDevice += this.bytes;
    return t!;
  }
  async free(): Promise<void> {
    if (this.freed) return;
    this.freed = true;
    if (this.worker.alive) await this.worker.request<null>({ type: 'free', handles: [this.wire.handle] });
  }
}

/** Bytes copied between host and device by runs of GPU sessions in this thread, since the last reset. */
export const copiedBytes = { toDevice: 0, fromDevice: 0 };
export function resetCopiedBytes(): void {
  copiedBytes.toDevice = 0;
  copiedBytes.fromDevice = 0;
}

type Feed = HostTensor | DeviceTensor;
/** A request without its id (the worker wrapper numbers them). */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type RequestBody = WithoutId<Request>;

export const GPU_INSTALL_HINT =
  'install the GPU build of onnxruntime-node: ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci (see README); ' +
  'the host also needs the CUDA 12 runtime and cuDNN 9';

/** Where onnxruntime-node keeps its native libraries. */
function ortNativeDir(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('onnxruntime-node'); // …/onnxruntime-node/dist/index.js
  return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

function providerLibraries(ep: 'cuda' | 'tensorrt'): string[] | undefined {
  const names = ep === 'cuda' ? ['shared', 'cuda'] : ['shared', 'cuda', 'tensorrt'];
  if (process.platform === 'linux') return names.map((n) => `libonnxruntime_providers_${n}.so`);
  if (process.platform === 'win32') return names.map((n) => `onnxruntime_providers_${n}.dll`);
  return undefined;
}

/**
 * Throws EngineError('ort_ep_unavailable') unless the installed onnxruntime-node has the provider's
 * libraries. Whether the GPU, CUDA and cuDNN are really there shows only at session creation.
 */
export function checkExecutionProvider(ep: ExecutionProvider): void {
  if (ep === 'cpu') return;
  if (ep === 'webgpu') {
    // onnxruntime-node's own linux/win32/darwin library has the WebGPU provider; an adapter shows at session creation.
    if (!['linux', 'win32', 'darwin'].includes(process.platform) || process.arch !== 'x64' && process.arch !== 'arm64') {
      throw new EngineError('ort_ep_unavailable', `execution provider webgpu is not in onnxruntime-node for ${process.platform}-${process.arch}; use cpu`);
    }
    return;
  }
  const libs = providerLibraries(ep);
  if (!libs) {
    throw new EngineError('ort_ep_unavailable', `execution provider ${ep} is not available on ${process.platform}-${process.arch}; use cpu`);
  }
  const dir = ortNativeDir();
  const missing = libs.filter((l) => !existsSync(join(dir, l)));
  if (missing.length > 0) {
    throw new EngineError('ort_ep_unavailable',
      `execution provider ${ep} is not installed (onnxruntime-node lacks ${missing.join(', ')} in ${dir}): ${GPU_INSTALL_HINT}` +
      (ep === 'tensorrt' ? ', plus TensorRT 10' : ''));
  }
  const system = missingSharedLibraries(ep === 'tensorrt' ? [...CUDA_LIBRARIES, ...TENSORRT_LIBRARIES] : CUDA_LIBRARIES);
  if (system.length > 0) {
    throw new EngineError('ort_ep_unavailable',
      `execution provider ${ep} needs ${system.join(', ')}, which neither LD_LIBRARY_PATH nor the linker cache (ldconfig -p) has: ` +
      'install the CUDA 12 runtime (cudart, cuBLAS, cuFFT) and cuDNN 9' + (ep === 'tensorrt' ? ' and TensorRT 10' : '') +
      ' (see README, "GPU install"), or add their folder to LD_LIBRARY_PATH');
  }
}

/** The execution providers this installation can try (webgpu still needs an adapter, seen at session creation). */
export function availableExecutionProviders(): ExecutionProvider[] {
  const out: ExecutionProvider[] = ['cpu'];
  for (const ep of ['webgpu', 'cuda', 'tensorrt'] as const) {
    try {
      checkExecutionProvider(ep);
      out.push(ep);
    } catch {
      // not installed
    }
  }
  return out;
}

/** Compiled, the worker is dist/…/session-worker.js; from sources under tsx it is the .ts file. */
function spawnWorker(): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const script = new URL(`./session-worker${fromSources ? '.ts' : '.js'}`, import.meta.url);
  if (!fromSources) return new Worker(script);
  // Workers inherit --import tsx, but on Node 20 its loader hooks do not apply inside them:
  // register tsx in the worker, then load the script.
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script.href)}); });`;
  return new Worker(boot, { eval: true });
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** A worker thread that owns ORT sessions. It does not keep the process alive while idle. */
export class OrtWorker {
  private static sharedWorker: OrtWorker | undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;
  private exited: Promise<void> | undefined;
  /** The thread has ended. */
  private gone = false;

  /** The process-wide worker (a new one if the last one died or was terminated). */
  static shared(): OrtWorker {
    if (!OrtWorker.sharedWorker || OrtWorker.sharedWorker.dead) OrtWorker.sharedWorker = new OrtWorker();
    return OrtWorker.sharedWorker;
  }

  constructor() {
    this.worker = spawnWorker();
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => this.settle(reply));
    this.worker.on('error', (e) => this.fail(new EngineError('ort_worker_died', `the ONNX Runtime worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => {
      this.gone = true;
      this.fail(new EngineError('ort_worker_died', `the ONNX Runtime worker exited (code ${code})`));
    });
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /** Sends one request; the worker handles requests in order. */
  request<T>(req: RequestBody, transfer: ArrayBuffer[] = [], signal?: AbortSignal): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        // The worker cannot stop ORT; drop the result when it comes.
        this.pending.set(id, { resolve: () => this.idle(), reject: () => this.idle() });
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (v) => { done(); resolve(v as T); },
        reject: (e) => { done(); reject(e); },
      });
      this.worker.ref();
      this.worker.postMessage({ ...req, id } as Request, transfer);
    });
  }

  /**
   * Stops the worker: pending requests fail at once, its sessions are released and the thread ends
   * once ORT returns from the run in progress, if any. (Killing the thread inside a native run makes
   * the binding throw into a dying environment, which aborts the whole process.)
   */
  async terminate(): Promise<void> {
    if (this.exited) return this.exited;
    if (this.gone) return;
    this.exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.fail(new EngineError('ort_worker_terminated', 'the ONNX Runtime worker was terminated'));
    this.worker.ref();
    this.worker.postMessage({ id: 0, type: 'shutdown' } satisfies Request);
    return this.exited;
  }

  private settle(reply: Reply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    this.idle();
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new EngineError(reply.error.code, reply.error.message));
  }

  private idle(): void {
    if (this.pending.size === 0) this.worker.unref();
  }

  private fail(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
    this.worker.unref();
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('the run was aborted', 'AbortError');
}

/** An ORT session living in a worker thread. */
export class Session {
  private released = false;

  constructor(
    private readonly worker: OrtWorker, private readonly info: SessionInfo, readonly executionProvider: ExecutionProvider,
    private readonly onDevice = false,
  ) {}

  get inputs(): readonly ValueMeta[] { return this.info.inputs; }
  get outputs(): readonly ValueMeta[] { return this.info.outputs; }
  get inputNames(): string[] { return this.info.inputs.map((m) => m.name); }
  get outputNames(): string[] { return this.info.outputs.map((m) => m.name); }

  /**
   * Runs the model; outputs come back as host tensors (float16 as Uint16Array bits). Feeds may be
   * DeviceTensors from this worker. A session created with outputsOnDevice must use runOnDevice.
   */
  async run(feeds: Readonly<Record<string, Feed>>, options: RunOptions = {}): Promise<Record<string, HostTensor>> {
    if (this.onDevice) {
      throw new EngineError('ort_bad_input', 'this session keeps outputs on the device: call runOnDevice (and read() what you need on the host)');
    }
    return (await this.runWire(feeds, options)) as Record<string, HostTensor>;
  }

  /** Like run(), for a session created with outputsOnDevice: those outputs come back as DeviceTensors. */
  async runOnDevice(feeds: Readonly<Record<string, Feed>>, options: RunOptions = {}): Promise<Record<string, HostTensor | DeviceTensor>> {
    const out = await this.runWire(feeds, options);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, 'handle' in v ? new DeviceTensor(this.worker, v) : v]));
  }

  private async runWire(feeds: Readonly<Record<string, Feed>>, options: RunOptions): Promise<Record<string, WireTensor | WireDeviceTensor>> {
    if (this.released) throw new EngineError('ort_session_closed', 'this session was disposed');
    const wire: Record<string, WireTensor | WireDeviceTensor> = {};
    const gpu = this.executionProvider !== 'cpu';
    for (const [name, t] of Object.entries(feeds)) {
      if (t instanceof DeviceTensor) {
        wire[name] = { dtype: t.dtype, dims: [...t.dims], handle: t.handle, bytes: t.bytes };
        continue;
      }
      if (t.data.length !== numel(t.dims)) {
        throw new EngineError('ort_bad_input', `input ${name}: ${t.data.length} values for dims [${t.dims.join(', ')}]`);
      }
      wire[name] = { dtype: t.dtype, dims: [...t.dims], data: t.data };
      if (gpu) copiedBytes.toDevice += t.data.byteLength;
    }
    const transfer = options.transfer ? transferables(Object.values(wire).flatMap((t) => ('data' in t ? [t.data] : []))) : [];
    const req: WithoutId<Extract<Request, { type: 'run' }>> = { type: 'run', session: this.info.session, feeds: wire };
    if (options.outputs) req.fetches = [...options.outputs];
    const out = await this.worker.request<Record<string, WireTensor | WireDeviceTensor>>(req, transfer, options.signal);
    if (gpu) for (const v of Object.values(out)) if ('data' in v) copiedBytes.fromDevice += v.data.byteLength;
    return out;
  }

  /** Releases the ORT session (the worker stays for other sessions). */
  async dispose(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.worker.alive) await this.worker.request<null>({ type: 'release', session: this.info.session });
  }
}

/**
 * Creates a session from a model file (external data is found beside it) or from in-memory bytes
 * (inline weights only). Throws EngineError for missing GPU providers and for models ORT refuses.
 */
export async function createSession(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
  const ep = options.executionProvider ?? defaultExecutionProvider();
  checkExecutionProvider(ep);
  if (options.outputsOnDevice && ep !== 'webgpu') {
    throw new EngineError('bad_request', `outputsOnDevice needs the webgpu provider (this session is on ${ep})`);
  }
  const wire: WorkerSessionOptions = { executionProvider: ep };
  if (options.intraOpThreads !== undefined) wire.intraOpThreads = options.intraOpThreads;
  if (options.interOpThreads !== undefined) wire.interOpThreads = options.interOpThreads;
  if (options.graphOptimizationLevel !== undefined) wire.graphOptimizationLevel = options.graphOptimizationLevel;
  if (options.deviceId !== undefined) wire.deviceId = options.deviceId;
  if (options.disableCpuFallback) wire.disableCpuFallback = true;
  if (options.quiet) wire.quiet = true;
  if (options.forceCpuNodes?.length) wire.forceCpuNodes = [...options.forceCpuNodes];
  if (options.outputsOnDevice) wire.outputsOnDevice = options.outputsOnDevice === true ? true : [...options.outputsOnDevice];
  if (options.packedCopy && ep === 'cpu' && typeof model === 'string') wire.packedCopy = options.packedCopy;
  const worker = options.worker ?? OrtWorker.shared();
  let info: SessionInfo;
  try {
    info = await worker.request<SessionInfo>({ type: 'create', model, options: wire });
  } catch (e) {
    if (e instanceof EngineError && e.code === 'ort_no_adapter') throw new EngineError('ort_ep_unavailable', `${e.message.trim()}. ${webgpuAdapterHint()}`);
    throw e;
  }
  return new Session(worker, info, ep, options.outputsOnDevice !== undefined);
}

export type { HostArray, HostTensor };
