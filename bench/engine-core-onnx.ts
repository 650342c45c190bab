// Graph builder + serializer + session creation cost for a graph of about 1,000 nodes.
// Run: node --import tsx bench/engine-core-onnx.ts [--blocks N] [--hidden N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, type Tensor } from '../src/engine/onnx/graph.js';
import { encodeModel, writeModel } from '../src/engine/onnx/serialize.js';
import { OrtWorker, createSession } from '../src/engine/onnx/session.js';
import type { FloatDType } from '../src/engine/onnx/dtype.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const hidden = arg('hidden', 64);
const tokens = 16;

const generated = new Map<string, Float32Array>();
/** Deterministic weights, generated once so the timings below measure the graph machinery. */
function weights(n: number, seed: number): Float32Array {
  const key = `${n}:${seed}`;
  const known = generated.get(key);
  if (known) return known;
  const out = new Float32Array(n);
  generated.set(key, out);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) / Math.sqrt(hidden);
  }
  return out;
}

/** Pre-norm transformer blocks (≈32 nodes each) until the graph has `minNodes` nodes. */
function build(dtype: FloatDType, minNodes: number): { g: GraphBuilder; blocks: number } {
  const g = new GraphBuilder({ dtype, keepIoFloat32: true });
  let seed = 1;
  const p = (name: string, shape: number[]): Tensor => g.param(name, shape, () => weights(shape.reduce((a, b) => a * b, 1), seed++));
  let x = g.input('x', ['B', tokens, hidden]);
  let blocks = 0;
  while (g.nodeCount < minNodes) {
    const name = `blocks.${blocks}`;
    x = g.scope(name, () => {
      const n1 = g.layerNorm(x, p(`${name}.norm1.weight`, [hidden]), p(`${name}.norm1.bias`, [hidden]));
      const q = g.linear(n1, p(`${name}.attn.to_q.weight`, [hidden, hidden]));
      const k = g.linear(n1, p(`${name}.attn.to_k.weight`, [hidden, hidden]));
      const v = g.linear(n1, p(`${name}.attn.to_v.weight`, [hidden, hidden]));
      const a = g.attention(q, k, v, { heads: 4 });
      const h = g.add(x, g.linear(a, p(`${name}.attn.to_out.weight`, [hidden, hidden]), p(`${name}.attn.to_out.bias`, [hidden])));
      const n2 = g.layerNorm(h, p(`${name}.norm2.weight`, [hidden]), p(`${name}.norm2.bias`, [hidden]));
      const [proj, gate] = g.split(g.linear(n2, p(`${name}.ff.proj.weight`, [8 * hidden, hidden]), p(`${name}.ff.proj.bias`, [8 * hidden])), 2, -1);
      const ff = g.linear(g.mul(proj!, g.gelu(gate!)), p(`${name}.ff.out.weight`, [hidden, 4 * hidden]), p(`${name}.ff.out.bias`, [hidden]));
      return g.add(h, ff); // [B, 16, hidden]
    });
    blocks++;
  }
  g.output(x, 'y');
  return { g, blocks };
}

async function time<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

const dir = mkdtempSync(join(tmpdir(), 'likeness-bench-'));
const worker = new OrtWorker();
const rows: string[][] = [];
try {
  for (const [dtype, external, warmup] of [
    ['float32', false, true], ['float32', false, false], ['float32', true, false],
    ['float16', false, true], ['float16', false, false], ['float16', true, false],
  ] as const) {
    {
      const [{ g, blocks }, tBuild] = await time(() => build(dtype, arg('nodes', 1000)));
      const [model, tDef] = await time(() => g.build());
      const [bytes, tEncode] = await time(() => encodeModel(model));
      const path = join(dir, `${dtype}-${external ? 'ext' : 'inline'}.onnx`);
      const [written, tWrite] = await time(() => writeModel(model, path, external ? { externalDataThreshold: 0 } : {}));
      const [session, tSession] = await time(() => createSession(path, { intraOpThreads: 1, graphOptimizationLevel: 'all', worker }));
      const [sessionRaw, tSessionRaw] = await time(() => createSession(path, { intraOpThreads: 1, graphOptimizationLevel: 'disabled', worker }));
      const feed = { x: { dtype: 'float32' as const, dims: [1, tokens, hidden], data: weights(tokens * hidden, 99) } };
      const [, tRun] = await time(() => session.run(feed));
      await session.dispose();
      await sessionRaw.dispose();
      if (warmup) continue;
      rows.push([
        dtype, external ? 'external' : 'inline', String(model.nodes.length), String(blocks), String(model.initializers.length),
        (bytes.byteLength / 2 ** 20).toFixed(2), tBuild.toFixed(1), tDef.toFixed(1), tEncode.toFixed(1), tWrite.toFixed(1),
        tSession.toFixed(0), tSessionRaw.toFixed(0), tRun.toFixed(1), String(written.dataFiles.length),
      ]);
    }
  }
} finally {
  await worker.terminate();
  rmSync(dir, { recursive: true, force: true });
}

const head = ['dtype', 'weights', 'nodes', 'blocks', 'inits', 'MiB', 'build ms', 'def ms', 'encode ms', 'write ms', 'session(all) ms', 'session(off) ms', 'run ms', 'data files'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
console.log(`ONNX graph builder bench: hidden ${hidden}, ${tokens} tokens, Node ${process.version}, intraOpThreads 1`);
console.log(line(head));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));
console.log('(after one warm-up build per dtype) build = GraphBuilder calls; def = build() to a ModelDef; encode = protobuf bytes, weights inline;');
console.log('write = writeModel to disk; session = InferenceSession.create from the path in the worker; run = first run.');
