// base + up @ down for the LoRA merge, synchronously: the nets read weights through a synchronous
// source (withLoras' readFloat32), so the merge cannot await. Large products go to ONNX Runtime in a
// worker thread of their own (gemm-worker.ts: MLAS's SGEMM, multi-threaded; 10–25× this file's JS
// loop, see apply.ts) and the caller blocks in Atomics.wait until the answer is posted back, then
// takes it with receiveMessageOnPort. Small products (and all of them, if the worker cannot start)
// run in JS. The worker starts on the first large product (≈ 0.3 s: ONNX Runtime's load and one
// session) and ends once merges have stopped for idleMs; it is not the nets' session worker, so a
// merge never queues behind a denoising run.
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { EngineError } from '../errors.js';
import type { GemmJob, GemmReply, GemmRequest, GemmWorkerData } from './gemm-protocol.js';

export type { GemmJob } from './gemm-protocol.js';

export interface LoraMergeOptions {
  /** 'auto' (default): ONNX Runtime for large products, JS for small ones or when ORT is unavailable. */
  kernel?: 'auto' | 'ort' | 'js';
  /** ORT intra-op threads of the merge worker. Default: the logical cores, at most 8. */
  threads?: number;
  /** With 'auto', products of fewer multiply-adds (m·r·n) than this run in JS. Default 2¹⁸. */
  minOrtMacs?: number;
  /** How long one blocking call may wait (the first one includes the worker's start). Default 120 s. */
  timeoutMs?: number;
  /** The worker ends after this long without a merge (it holds ONNX Runtime's memory). Default 30 s. */
  idleMs?: number;
}

const DEFAULTS: Required<LoraMergeOptions> = {
  kernel: 'auto', threads: Math.min(8, availableParallelism()), minOrtMacs: 1 << 18, timeoutMs: 120_000, idleMs: 30_000,
};

let settings: Required<LoraMergeOptions> = { ...DEFAULTS };
let worker: GemmWorker | undefined;
let idleTimer: NodeJS.Timeout | undefined;
/** Why the worker is unusable ('auto' then stays in JS for the rest of the process). */
let unavailable: string | undefined;

/** Changes how LoRA merges compute (process-wide); `{}` restores the defaults. */
export function configureLoraMerge(options: LoraMergeOptions): void {
  const next = { ...DEFAULTS, ...options };
  if (worker && next.threads !== settings.threads) void closeLoraMergeWorker();
  settings = next;
  unavailable = undefined;
}

/** Ends the merge worker (a later large merge starts a new one). */
export async function closeLoraMergeWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  clearTimeout(idleTimer);
  await w?.close();
}

/**
 * base + up @ down for each job that `makeJobs` returns, in order. The jobs' arrays are consumed:
 * their buffers may be moved to the worker, so make arrays for the call (whole buffers, nobody
 * else's). If the worker fails, the jobs are made again and run in JS.
 */
export function gemmSync(makeJobs: () => GemmJob[]): Float32Array[] {
  const jobs = makeJobs();
  const { kernel, minOrtMacs } = settings;
  const toOrt = (j: GemmJob): boolean => kernel === 'ort' || (kernel === 'auto' && unavailable === undefined && j.m * j.r * j.n >= minOrtMacs);
  const remote = jobs.filter(toOrt);
  let fromOrt: Float32Array[] = [];
  if (remote.length > 0) {
    try {
      worker ??= new GemmWorker(settings.threads);
      fromOrt = worker.run(remote, settings.timeoutMs);
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => void closeLoraMergeWorker(), settings.idleMs).unref();
    } catch (e) {
      const message = (e as Error).message;
      // a worker that answered can be ended; one that did not may be inside ORT, where ending the
      // thread would abort the process: it is left behind (unref'd)
      if (e instanceof NoAnswer) worker = undefined;
      else void closeLoraMergeWorker();
      if (kernel === 'ort') throw new EngineError('lora_merge_failed', `the LoRA merge could not run on ONNX Runtime: ${message}`);
      unavailable = message;
      process.emitWarning(`LoRA merges fall back to JavaScript (slow): ${message}`, { code: 'LIKENESS_LORA_MERGE' });
      return makeJobs().map(gemmJs);
    }
  }
  let next = 0;
  return jobs.map((j) => (toOrt(j) ? fromOrt[next++]! : gemmJs(j)));
}

/** The same product in JS: float64 accumulation per output row, rounded once. */
export function gemmJs({ m, r, n, up, down, base }: GemmJob): Float32Array {
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let o = 0; o < m; o++) {
    for (let k = 0; k < n; k++) acc[k] = base[o * n + k]!;
    for (let j = 0; j < r; j++) {
      const a = up[o * r + j]!;
      if (a === 0) continue;
      const d = j * n;
      for (let k = 0; k < n; k++) acc[k] = acc[k]! + a * down[d + k]!;
    }
    out.set(acc, o * n);
  }
  return out;
}

class NoAnswer extends Error {}

/** The worker, spoken to synchronously. */
class GemmWorker {
  private readonly thread: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private seq = 0;

  constructor(threads: number) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.thread = spawn({ port: port2, flag: this.flag, threads });
    this.thread.unref();
    this.thread.on('error', () => undefined); // seen by run() as a failed or missing answer
  }

  run(jobs: readonly GemmJob[], timeoutMs: number): Float32Array[] {
    const seq = ++this.seq;
    const request: GemmRequest = { seq, jobs: [...jobs] };
    const buffers = new Set<ArrayBuffer>();
    for (const j of jobs) {
      for (const a of [j.up, j.down, j.base]) if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
    }
    this.port.postMessage(request, [...buffers]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.flag, 0);
      if (seen === seq || seen === -1) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new NoAnswer(`no answer from the merge worker in ${Math.round(timeoutMs / 1000)} s`);
      Atomics.wait(this.flag, 0, seen, left);
    }
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      const reply = m.message as GemmReply;
      if (reply.seq !== seq && reply.seq !== -1) continue;
      if (!reply.ok) throw new Error(reply.message);
      return reply.outputs;
    }
    throw new Error('the merge worker signalled an answer that did not arrive');
  }

  async close(): Promise<void> {
    this.port.close();
    await this.thread.terminate();
  }
}

/**
 * Starts gemm-worker (from sources under tsx, whose loader hooks Node 20 does not carry into
 * workers, or compiled). A worker that fails to load answers every request with the error.
 */
function spawn(data: GemmWorkerData & { port: MessagePort }): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const script = JSON.stringify(new URL(`./gemm-worker${fromSources ? '.ts' : '.js'}`, import.meta.url).href);
  const load = fromSources
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${script}); })`
    : `import(${script})`;
  const fail = `async (e) => {
    const { workerData } = await import('node:worker_threads');
    workerData.port.postMessage({ seq: -1, ok: false, message: 'the merge worker did not start: ' + String(e && e.message || e) });
    Atomics.store(workerData.flag, 0, -1);
    Atomics.notify(workerData.flag, 0);
  }`;
  return new Worker(`${load}.catch(${fail});`, { eval: true, workerData: data, transferList: [data.port] });
}
