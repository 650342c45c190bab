// The LoRA benchmark (issue 6 item 7), two tables:
//   merge kernel   W' = W + c · up @ down on the JS loop vs on ONNX Runtime (engine/lora/gemm.ts), for
//                  (a) one [1280, 1280] rank-32 Linear and (b) a whole SDXL rank-32 kohya LoRA: the 722
//                  transformer Linears of SDXL base's UNet (shapes from its config, random factors)
//   switching      on an SDXL-architecture model (bench/engine.ts's mid config), the UNet and both
//                  text encoders loaded with LoRAs fused as the InstantID tool loads them: first LoRA,
//                  another LoRA, the first at another scale (all compile-cache misses), then the first
//                  at its first scale again (a hit); merge time, compile-cache disk and RSS per set
// Run alone: node --import tsx bench/lora.ts [--threads N] [--full-js]  (the merge table only; with
// --full-js (b) also runs in JS, ≈ 2–4 min). bench/engine.ts runs both on its mid model.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { unetModules, type SdxlConfigs } from '../src/engine/formats/lora-keymap.js';
import { readLora, type LoraFile } from '../src/engine/formats/lora.js';
import { loraTargetsFromWeights } from '../src/engine/formats/lora-keymap.js';
import { openWeights, type WeightsFile } from '../src/engine/formats/weights.js';
import {
  closeLoraMergeWorker, configureLoraMerge, loraCacheKey, lorasFor, mergeLoras, withLoras, type AppliedLora, type LoadedPatch,
} from '../src/engine/lora/apply.js';
import { writeSmokeLora } from '../src/engine/lora/smoke.js';
import { loadClipTextEncoder } from '../src/engine/nets/clip-text-encoder.js';
import { weightsHashOf } from '../src/engine/nets/net-session.js';
import { mergeSources, type TensorSource } from '../src/engine/nets/sdxl-weights.js';
import { createUnetRunner } from '../src/engine/nets/unet-runner.js';
import { writeRandomSdxlModel, type RandomSdxlConfigs } from '../src/engine/smoke.js';

/** stabilityai/stable-diffusion-xl-base-1.0's UNet, the fields that shape its modules. */
const SDXL_UNET = {
  block_out_channels: [320, 640, 1280], layers_per_block: 2, transformer_layers_per_block: [1, 2, 10],
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'], mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 2048, use_linear_projection: true, in_channels: 4, out_channels: 4,
  addition_embed_type: 'text_time', addition_time_embed_dim: 256, projection_class_embeddings_input_dim: 2816,
};
const RANK = 32;

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function layer(out: number, inp: number, seed: number): { base: Float32Array; patch: LoadedPatch } {
  const factors = { down: random(RANK * inp, seed), up: random(out * RANK, seed + 1) };
  return { base: random(out * inp, seed + 2), patch: { delta: { rank: RANK, alpha: RANK / 2, targetShape: [out, inp] }, factors, scale: 0.8 } };
}

/** (b): the 722 [out, in] shapes of a kohya SDXL LoRA (every Linear of the UNet's transformers). */
function sdxlLoraShapes(): [number, number][] {
  return [...unetModules(SDXL_UNET)].filter(([m]) => /\.attentions\.\d+\./.test(m)).map(([, s]) => s as [number, number]);
}

export interface MergeRow {
  what: string;
  layers: number;
  gmacs: number;
  js: number;
  jsMeasured: boolean;
  ort: number;
}

export async function mergeKernelBench(threads: number, fullJs = false): Promise<MergeRow[]> {
  try {
    configureLoraMerge({ kernel: 'ort', threads });
    const one = layer(1280, 1280, 1);
    mergeLoras(one.base, [one.patch]); // starts the worker
    const ort = median(Array.from({ length: 7 }, () => { const t0 = performance.now(); mergeLoras(one.base, [one.patch]); return seconds(t0); }));
    configureLoraMerge({ kernel: 'js' });
    const js = median(Array.from({ length: 3 }, () => { const t0 = performance.now(); mergeLoras(one.base, [one.patch]); return seconds(t0); }));

    const shapes = sdxlLoraShapes();
    const macs = shapes.reduce((n, [o, i]) => n + o * i * RANK, 0);
    // random weights and factors once per shape (8 shapes), not per layer
    const families = new Map<string, ReturnType<typeof layer>>();
    for (const [o, i] of shapes) if (!families.has(`${o}x${i}`)) families.set(`${o}x${i}`, layer(o, i, families.size * 7 + 3));
    const all = (): number => {
      const t0 = performance.now();
      for (const [o, i] of shapes) {
        const l = families.get(`${o}x${i}`)!;
        mergeLoras(l.base, [l.patch]);
      }
      return seconds(t0);
    };
    configureLoraMerge({ kernel: 'ort', threads });
    const fullOrt = all();
    configureLoraMerge({ kernel: 'js' });
    const fullJsTime = fullJs ? all() : (js * macs) / (1280 * 1280 * RANK);
    return [
      { what: '(a) one [1280, 1280] Linear', layers: 1, gmacs: (1280 * 1280 * RANK) / 1e9, js, jsMeasured: true, ort },
      { what: '(b) SDXL kohya LoRA, UNet transformers', layers: shapes.length, gmacs: macs / 1e9, js: fullJsTime, jsMeasured: fullJs, ort: fullOrt },
    ];
  } finally {
    configureLoraMerge({});
    await closeLoraMergeWorker();
  }
}

export function mergeTable(rows: MergeRow[], threads: number): string {
  return table(
    [`LoRA merge, rank ${RANK}, float32 (ORT: a Gemm in the merge worker, ${threads} intra-op threads; JS: float64 row loop)`],
    ['layers merged', 'count', 'multiply-adds', 'JS', 'ONNX Runtime', 'speed-up'],
    rows.map((r) => [
      r.what, String(r.layers), `${r.gmacs.toFixed(2)}·10⁹`, `${r.js < 10 ? r.js.toFixed(3) : r.js.toFixed(0)} s${r.jsMeasured ? '' : ' (est.)'}`,
      `${r.ort.toFixed(3)} s`, `${(r.js / r.ort).toFixed(0)}×`,
    ]),
  );
}

export interface SwitchRow {
  step: string;
  seconds: number;
  /** Reading and fusing the patched weights (within `seconds`). */
  merge: number;
  hit: boolean;
  /** Compile-cache growth for this set (UNet + both text encoders). */
  diskBytes: number;
  /** RSS with this set's nets loaded. */
  rssBytes: number;
}

interface Base {
  configs: Required<SdxlConfigs>;
  files: { unet: WeightsFile; text_encoder: WeightsFile; text_encoder_2: WeightsFile };
  hashes: { unet: string; text_encoder: string; text_encoder_2: string };
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

/** Times every read of a patched weight (base read + merge). */
function timed(source: TensorSource, patched: ReadonlySet<string>, clock: { s: number }): TensorSource {
  const wrap = <A extends unknown[], R>(f: (name: string, ...a: A) => R) => (name: string, ...a: A): R => {
    if (!patched.has(name)) return f(name, ...a);
    const t0 = performance.now();
    try { return f(name, ...a); } finally { clock.s += seconds(t0); }
  };
  return { has: (n) => source.has(n), info: (n) => source.info(n), read: wrap(source.read.bind(source)), readFloat32: wrap(source.readFloat32.bind(source)) };
}

/** The UNet and both text encoders with `applied` fused, as tools/instantid/pipelines.ts loads them. */
async function loadSet(base: Base, applied: readonly AppliedLora[], cacheDir: string, threads: number): Promise<{ merge: number; hit: boolean; dispose(): Promise<void> }> {
  const clock = { s: 0 };
  const part = (c: 'unet' | 'text_encoder' | 'text_encoder_2'): { weights: TensorSource; weightsHash: string } => {
    const scaled = lorasFor(c, applied);
    const targets = new Set(scaled.flatMap((l) => l.deltas.map((d) => d.target)));
    const used = applied.filter((a) => a.lora.deltas[c].length > 0).map((a) => ({ id: a.lora.id, scale: a.scale }));
    return { weights: timed(withLoras(mergeSources([base.files[c]]), scaled), targets, clock), weightsHash: loraCacheKey(base.hashes[c], used) };
  };
  const te = async (c: 'text_encoder' | 'text_encoder_2', withProjection: boolean): Promise<Awaited<ReturnType<typeof loadClipTextEncoder>>> => {
    const p = part(c);
    return loadClipTextEncoder(p.weights, c === 'text_encoder' ? base.configs.textEncoder : base.configs.textEncoder2, {
      cacheDir, weightsHash: p.weightsHash, withProjection, outputs: withProjection ? ['penultimate', 'text_embeds'] : ['penultimate'], intraOpThreads: threads,
    });
  };
  const e1 = await te('text_encoder', false);
  const e2 = await te('text_encoder_2', true);
  const u = part('unet');
  const unet = await createUnetRunner({ config: base.configs.unet, weights: u.weights, weightsHash: u.weightsHash }, { cacheDir, session: { intraOpThreads: threads } });
  return {
    merge: clock.s,
    hit: e1.cacheHit && e2.cacheHit && unet.compiled.cacheHit,
    dispose: async () => { await Promise.all([e1.dispose(), e2.dispose(), unet.dispose()]); },
  };
}

export async function switchBench(configs: RandomSdxlConfigs, threads: number): Promise<{ rows: SwitchRow[]; loraBytes: number; modules: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-bench-lora-'));
  const opened: { close(): void }[] = [];
  try {
    const model = await writeRandomSdxlModel(join(dir, 'model'), configs);
    const path = (c: string): string => join(model, c, c === 'unet' ? 'diffusion_pytorch_model.safetensors' : 'model.safetensors');
    const config = (c: string): Record<string, unknown> => JSON.parse(readFileSync(join(model, c, 'config.json'), 'utf8')) as Record<string, unknown>;
    const files = { unet: openWeights(path('unet')), text_encoder: openWeights(path('text_encoder')), text_encoder_2: openWeights(path('text_encoder_2')) };
    opened.push(...Object.values(files));
    const base: Base = {
      configs: { unet: config('unet'), textEncoder: config('text_encoder'), textEncoder2: config('text_encoder_2') },
      files,
      hashes: { unet: await weightsHashOf([path('unet')]), text_encoder: await weightsHashOf([path('text_encoder')]), text_encoder_2: await weightsHashOf([path('text_encoder_2')]) },
    };
    const targets = loraTargetsFromWeights({ unet: { config: base.configs.unet, weights: files.unet }, textEncoder: files.text_encoder, textEncoder2: files.text_encoder_2 });
    const loras: LoraFile[] = [];
    let modules = 0;
    for (const seed of [1, 2]) {
      const file = join(dir, `lora-${seed}.safetensors`);
      modules = (await writeSmokeLora(file, base.configs, { rank: RANK, seed })).modules;
      loras.push(readLora(file, targets, { id: `lora-${seed}` }));
    }
    opened.push(...loras);
    const cacheDir = join(dir, 'cache');
    const [a, b] = loras as [LoraFile, LoraFile];
    const steps: [string, AppliedLora[]][] = [
      ['base model (no LoRA), compile', []],
      ['LoRA A at 1.0, first time', [{ lora: a, scale: 1 }]],
      ['switch to LoRA B at 1.0', [{ lora: b, scale: 1 }]],
      ['LoRA A at 0.6 (scale change, miss)', [{ lora: a, scale: 0.6 }]],
      ['LoRA A at 1.0 again (cache hit)', [{ lora: a, scale: 1 }]],
      ['LoRA A 1.0 + B 0.5 together', [{ lora: a, scale: 1 }, { lora: b, scale: 0.5 }]],
    ];
    const rows: SwitchRow[] = [];
    for (const [step, applied] of steps) {
      const disk0 = folderBytes(dir) - folderBytes(model);
      const t0 = performance.now();
      const set = await loadSet(base, applied, cacheDir, threads);
      const s = seconds(t0);
      const rssBytes = process.memoryUsage().rss;
      await set.dispose();
      rows.push({ step, seconds: s, merge: set.merge, hit: set.hit, diskBytes: folderBytes(dir) - folderBytes(model) - disk0, rssBytes });
    }
    return { rows, loraBytes: statSync(join(dir, 'lora-1.safetensors')).size, modules };
  } finally {
    for (const o of opened) o.close();
    await closeLoraMergeWorker();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function switchTable(result: { rows: SwitchRow[]; loraBytes: number; modules: number }, describe: string, threads: number): string {
  return table(
    [
      `LoRA switching on ${describe}: UNet + both text encoders with the LoRA fused, built, compiled to the cache and`,
      `opened (VAE not included; it is never patched). kohya LoRAs of rank ${RANK}, ${result.modules} modules (transformer Linears, LoCon convs,`,
      `text encoders), ${mb(result.loraBytes)} each; ORT intra-op threads ${threads}. The LoRA file stays open and is read per layer as the`,
      'nets are built; nothing merged is kept: what a set holds is its compiled graphs on disk and its loaded sessions.',
    ],
    ['step', 'load', 'of which merge', 'compile cache', 'disk added', 'RSS loaded'],
    result.rows.map((r) => [r.step, `${r.seconds.toFixed(2)} s`, `${r.merge.toFixed(2)} s`, r.hit ? 'hit' : 'miss', mb(r.diskBytes), mb(r.rssBytes)]),
  );
}

function table(notes: string[], head: string[], lines: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [...notes, '', fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, 'full-js': { type: 'boolean' } } });
  const threads = values.threads ? Number(values.threads) : Math.min(4, availableParallelism());
  console.log(mergeTable(await mergeKernelBench(threads, values['full-js'] ?? false), threads));
}
