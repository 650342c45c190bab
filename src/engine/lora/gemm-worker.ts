// The LoRA merge's worker thread: one tiny ONNX graph, merged = up @ down + base (a Gemm with
// symbolic M, R, N), run by ONNX Runtime's multi-threaded MLAS kernel. gemm.ts calls it
// synchronously: it posts a request on `port`, blocks in Atomics.wait on `flag`, and this side stores
// the request's sequence number in `flag` after posting the reply. Requests come one at a time.
import { workerData, type MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/graph.js';
import { encodeModel } from '../onnx/serialize.js';
import { lowerThisThreadForEngine } from '../thread-priority.js';
import type { GemmReply, GemmRequest, GemmWorkerData } from './gemm-protocol.js';

const { port, flag, threads } = workerData as GemmWorkerData & { port: MessagePort };
lowerThisThreadForEngine();

/** merged [M, N] = up [M, R] @ down [R, N] + base [M, N]. */
async function gemmModel(): Promise<Uint8Array> {
  const g = new GraphBuilder({ name: 'lora_merge' });
  const up = g.input('up', ['M', 'R']);
  const down = g.input('down', ['R', 'N']);
  const base = g.input('base', ['M', 'N']);
  const [merged] = g.op('Gemm', [up, down, base], [{ dtype: 'float32', shape: ['M', 'N'] }]);
  g.output(merged!, 'merged');
  return encodeModel(g.build());
}

const session = gemmModel().then((model) =>
  // ORT's arena keeps the largest buffers between runs (measured ~25% faster than without it); gemm.ts
  // ends this worker when merges stop, which returns them
  ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 }));
// a failure is reported with the first request
session.catch(() => undefined);

async function handle(req: GemmRequest): Promise<{ reply: GemmReply; transfer: ArrayBuffer[] }> {
  try {
    const s = await session;
    const outputs: Float32Array[] = [];
    for (const { m, r, n, up, down, base } of req.jobs) {
      const result = await s.run({
        up: new ort.Tensor('float32', up, [m, r]),
        down: new ort.Tensor('float32', down, [r, n]),
        base: new ort.Tensor('float32', base, [m, n]),
      });
      outputs.push(result.merged!.data as Float32Array);
    }
    const whole = outputs.filter((a) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength);
    return { reply: { seq: req.seq, ok: true, outputs }, transfer: whole.map((a) => a.buffer as ArrayBuffer) };
  } catch (e) {
    return { reply: { seq: req.seq, ok: false, message: (e as Error).message ?? String(e) }, transfer: [] };
  }
}

port.on('message', (req: GemmRequest) => {
  void handle(req).then(({ reply, transfer }) => {
    try {
      port.postMessage(reply, transfer);
    } catch {
      port.postMessage(reply); // ORT-owned buffers that cannot move are copied
    }
    Atomics.store(flag, 0, req.seq);
    Atomics.notify(flag, 0);
  });
});
