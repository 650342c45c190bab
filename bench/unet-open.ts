// Opening a compiled UNet (issue 11 item 4): the full-size SDXL UNet (or --size mid), random weights,
// LoRA-slotted as the pipeline builds it. One table; each row a fresh process (as a server start is), in order:
//   compile + first open   build the graph, write it to an empty compile cache, open it (this open also
//                          writes ONNX Runtime's packed copy, packed-copy.ts, unless --no-copy)
//   cached open, copy off  LIKENESS_ORT_PACKED_COPY=off: the plain model, weights pre-packed on the heap
//   cached open, copy on   the packed copy, memory-mapped
// with the process's resident memory after each open, the cache's size on disk, and (--step) one CFG-pair
// UNet call at --res after each cached open.
// Run: node --import tsx bench/unet-open.ts [--size full|mid] [--threads 2] [--step] [--res 512] [--keep DIR]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseUNetConfig } from '../src/engine/nets/unet-config.js';
import { createUnetRunner } from '../src/engine/nets/unet-runner.js';
import { unetWeightShapes } from '../src/engine/nets/unet-shapes.js';
import { rehearsalConfigs } from '../src/engine/smoke-sizes.js';
import { cfgPairInputs, randomSource } from './random-weights.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'full' }, threads: { type: 'string', default: '2' }, step: { type: 'boolean' },
    res: { type: 'string', default: '512' }, keep: { type: 'string' }, 'no-copy': { type: 'boolean' }, phase: { type: 'string' },
  },
});
const size = values.size === 'mid' ? 'mid' : 'full';
const threads = Number(values.threads);
const res = Number(values.res);

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const gb = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GB`;
const rss = (): string => gb(process.memoryUsage().rss);
const dirBytes = (dir: string): number => readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile()).reduce((n, d) => n + statSync(join(d.parentPath, d.name)).size, 0);

async function main(): Promise<void> {
  const configs = rehearsalConfigs(size);
  const shapes = unetWeightShapes(parseUNetConfig(configs.unet)) as Map<string, readonly number[]>;
  const params = [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const source = { config: configs.unet, weights: randomSource(shapes), weightsHash: `bench-unet-open-${size}` };
  const cacheDir = values.keep ?? mkdtempSync(join(tmpdir(), 'likeness-unet-open-'));
  mkdirSync(cacheDir, { recursive: true });
  const session = { intraOpThreads: threads, interOpThreads: 1 };
  const rows: [string, string][] = [];
  const row = (k: string, v: string): void => { rows.push([k, v]); console.error(`${k}: ${v}`); };
  row('model', `${size} UNet, ${(params / 1e9).toFixed(2)} B parameters, LoRA-slotted, float32, ${threads} threads`);
  const inputs = cfgPairInputs(res);
  const open = async (label: string, copy: 'on' | 'off'): Promise<void> => {
    process.env.LIKENESS_ORT_PACKED_COPY = copy;
    const t0 = performance.now();
    const unet = await createUnetRunner(source, { cacheDir, session, loraSlots: true });
    row(label, `${seconds(t0).toFixed(1)} s, RSS ${rss()} after the open, cache ${gb(dirBytes(cacheDir))}`);
    if (values.step) {
      const t1 = performance.now();
      await unet.run(inputs);
      row(`${label}: first ${res}² CFG-pair call`, `${seconds(t1).toFixed(1)} s, RSS ${rss()}`);
      const t2 = performance.now();
      await unet.run(inputs);
      row(`${label}: second call`, `${seconds(t2).toFixed(1)} s`);
    }
    await unet.dispose();
  };
  const phases = {
    compile: ['compile + first open', values['no-copy'] ? 'off' : 'on'],
    off: ['cached open, copy off (pre-packing at open)', 'off'],
    on: ['cached open, copy on (memory-mapped)', 'on'],
  } as const;
  if (values.phase) {
    const [label, copy] = phases[values.phase as keyof typeof phases];
    await open(label, copy);
    console.log(JSON.stringify(rows));
    return;
  }
  try {
    for (const phase of Object.keys(phases)) {
      const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--phase', phase, '--keep', cacheDir, '--size', size, '--threads', String(threads), '--res', String(res),
        ...(values.step ? ['--step'] : []), ...(values['no-copy'] ? ['--no-copy'] : [])];
      const child = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
      if (child.status !== 0) {
        row(phases[phase as keyof typeof phases][0], `failed (exit ${child.status ?? child.signal})`);
        break;
      }
      for (const [k, v] of JSON.parse(child.stdout.trim().split('\n').at(-1)!) as [string, string][]) if (k !== 'model') rows.push([k, v]);
    }
  } finally {
    if (!values.keep) rmSync(cacheDir, { recursive: true, force: true });
  }
  console.log(`| measure | value |\n| --- | --- |\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}`);
}

await main();
