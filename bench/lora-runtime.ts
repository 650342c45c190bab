// LoRAs at run time vs fused (issue 11 item 2), on the mid-size SDXL UNet (smoke-sizes.ts: SDXL's
// architecture at ≈ 1/10, 248 M parameters, real 2048-wide context) or the full one (--size full),
// random weights, one CFG-pair call at --res (default 512²). One table:
//   - the UNet without slots (the base graph), with slots and no LoRA (every branch at rank 0), and
//     with one and two rank-32 kohya-style LoRAs (every transformer Linear) as branches: step time;
//   - what a LoRA change costs: setLoras (set change, scale change) vs the fused form (merge + graph
//     build + compile-cache write + session open for each new set or scale), and disk written.
// CPU time (all threads of the process, process.cpuUsage) is reported beside wall time: on a shared
// machine it is the steadier measure of what a variant costs.
// Run: node --import tsx bench/lora-runtime.ts [--size mid|full] [--res 512] [--threads 2] [--reps 3]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LoraDelta, LoraFactors } from '../src/engine/formats/lora.js';
import { withLoras, type ScaledLora } from '../src/engine/lora/apply.js';
import { parseUNetConfig } from '../src/engine/nets/unet-config.js';
import { createUnetRunner, type UnetRunner } from '../src/engine/nets/unet-runner.js';
import { unetWeightShapes } from '../src/engine/nets/unet-shapes.js';
import { rehearsalConfigs } from '../src/engine/smoke-sizes.js';
import { cfgPairInputs, hash, random, randomSource } from './random-weights.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'mid' },
    res: { type: 'string', default: '512' },
    threads: { type: 'string', default: '2' },
    reps: { type: 'string', default: '3' },
  },
});
const size = values.size === 'full' ? 'full' : 'mid';
const res = Number(values.res);
const threads = Number(values.threads);
const reps = Number(values.reps);
const RANK = 32;

/** A kohya-style LoRA: every Linear inside the transformers (attn1/attn2 q/k/v/out, ff, proj_in/out). */
function loraDeltas(shapes: Map<string, readonly number[]>, seed: number): LoraDelta[] {
  const out: LoraDelta[] = [];
  for (const [target, shape] of shapes) {
    if (shape.length !== 2 || !/\.attentions\.\d+\./.test(target) || !target.endsWith('.weight')) continue;
    const [o, i] = shape as [number, number];
    let cached: LoraFactors | undefined;
    out.push({
      target, source: `lora_${target}`, targetShape: [...shape], rank: RANK, alpha: RANK / 2, downShape: [RANK, i], upShape: [o, RANK],
      load: () => (cached ??= { down: random(RANK * i, hash(target) ^ seed, 1 / Math.sqrt(i)), up: random(o * RANK, hash(target) ^ (seed + 1), 0.05 / RANK) }),
    });
  }
  return out;
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dirBytes = (dir: string): number => readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile()).reduce((n, d) => n + statSync(join(d.parentPath, d.name)).size, 0);

async function main(): Promise<void> {
  const configs = rehearsalConfigs(size);
  const config = parseUNetConfig(configs.unet);
  const shapes = unetWeightShapes(config) as Map<string, readonly number[]>;
  const params = [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const source = randomSource(shapes);
  const cacheDir = mkdtempSync(join(tmpdir(), 'likeness-lora-runtime-bench-'));
  const inputs = cfgPairInputs(res);
  const session = { intraOpThreads: threads, interOpThreads: 1 };
    const a = loraDeltas(shapes, 11);
  const b = loraDeltas(shapes, 23);
  const factorCount = a.reduce((n, d) => n + RANK * (d.targetShape[0]! + d.targetShape[1]!), 0);
  const rows: [string, string][] = [];
  const row = (k: string, v: string): void => { rows.push([k, v]); console.error(`${k}: ${v}`); };
  row('model', `${size} UNet, ${(params / 1e6).toFixed(0)} M parameters, ${res}² CFG pair (batch 2), ${threads} threads, median of ${reps}`);
  row('LoRA', `rank ${RANK} on ${a.length} transformer Linears (${(factorCount / 1e6).toFixed(1)} M factor values)`);

  try {
    let t0 = performance.now();
    const plain = await createUnetRunner({ config: configs.unet, weights: source, weightsHash: 'bench-base' }, { cacheDir, session });
    row('base graph: compile + open', `${seconds(t0).toFixed(1)} s`);
    t0 = performance.now();
    const slotted = await createUnetRunner({ config: configs.unet, weights: source, weightsHash: 'bench-base' }, { cacheDir, session, loraSlots: true });
    row('slotted graph: compile + open', `${seconds(t0).toFixed(1)} s (${slotted.loraSlots.size} slots)`);
    const withLora = await createUnetRunner({ config: configs.unet, weights: source, weightsHash: 'bench-base' }, { cacheDir, session, loraSlots: true });
    const entries = readdirSync(cacheDir).length;
    const bytes = dirBytes(cacheDir);
    const set = (loras: ScaledLora[]): number => { const t = performance.now(); withLora.setLoras(loras); return seconds(t); };
    for (const d of [...a, ...b]) d.load(); // the factors read once, as from a LoRA file in the page cache
    row('setLoras: first LoRA (base → LoRA)', `${set([{ deltas: a, scale: 0.8 }]).toFixed(3)} s`);
    row('setLoras: scale 0.8 → 0.5', `${set([{ deltas: a, scale: 0.5 }]).toFixed(3)} s`);
    row('setLoras: another LoRA (set change)', `${set([{ deltas: b, scale: 0.8 }]).toFixed(3)} s`);
    row('setLoras: two LoRAs', `${set([{ deltas: a, scale: 0.5 }, { deltas: b, scale: 0.8 }]).toFixed(3)} s`);
    row('disk written by LoRA changes', `${readdirSync(cacheDir).length - entries} entries, ${((dirBytes(cacheDir) - bytes) / 2 ** 20).toFixed(0)} MB`);

    const before = dirBytes(cacheDir);
    t0 = performance.now();
    const fused = await createUnetRunner({ config: configs.unet, weights: withLoras(source, [{ deltas: a, scale: 0.8 }]), weightsHash: 'bench-fused-a-0.8' }, { cacheDir, session });
    row('fused: each new set or scale (merge + build + write + open)', `${seconds(t0).toFixed(1)} s, ${((dirBytes(cacheDir) - before) / 2 ** 20).toFixed(0)} MB written`);

    // steps interleaved (the machine is shared: each round runs every variant once)
    const variants: [string, UnetRunner, () => void][] = [
      ['base graph', plain, () => undefined],
      ['slotted, no LoRA (rank 0)', slotted, () => undefined],
      ['slotted, one LoRA', withLora, () => withLora.setLoras([{ deltas: a, scale: 0.8 }])],
      ['slotted, two LoRAs', withLora, () => withLora.setLoras([{ deltas: a, scale: 0.5 }, { deltas: b, scale: 0.8 }])],
      ['fused LoRA (for comparison)', fused, () => undefined],
    ];
    const times = variants.map(() => [] as number[]);
    const cpu = variants.map(() => [] as number[]);
    await plain.run(inputs); // warm-up
    for (let r = 0; r < reps; r++) {
      for (const [k, [, runner, prepare]] of variants.entries()) {
        prepare();
        const t = performance.now();
        const c = process.cpuUsage();
        await runner.run(inputs);
        times[k]!.push(seconds(t));
        const used = process.cpuUsage(c);
        cpu[k]!.push((used.user + used.system) / 1e6);
      }
    }
    const base = median(times[0]!);
    const baseCpu = median(cpu[0]!);
    for (const [k, [name]] of variants.entries()) {
      const m = median(times[k]!);
      const c = median(cpu[k]!);
      row(`step: ${name}`, `wall ${m.toFixed(2)} s${k === 0 ? '' : ` (${pct(m, base)})`}, CPU ${c.toFixed(2)} s${k === 0 ? '' : ` (${pct(c, baseCpu)})`}; wall runs ${times[k]!.map((t) => t.toFixed(1)).join(', ')}`);
    }
    for (const r of [plain, slotted, withLora, fused]) await r.dispose();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
  console.log('\n| measure | value |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

function pct(x: number, base: number): string {
  const p = ((x - base) / base) * 100;
  return `${p >= 0 ? '+' : ''}${p.toFixed(1)}%`;
}

await main();
