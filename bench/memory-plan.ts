// The memory plan against measured peaks (issue 11 item 3): for each configuration a child process
// loads the InstantID pipeline (IdentityNet + the canny ControlNet) on the smoke set, runs one task
// of one step with CFG, and reports its peak RSS (VmHWM) beside engine/memory-plan.ts's estimate.
// One table: configuration, estimate, measured, error.
// Run: node --import tsx bench/memory-plan.ts [--threads 2]   (the smoke set is written to a temp home)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { planInstantIdTask } from '../src/engine/memory-plan.js';
import { InstantIdPipeline } from '../src/engine/pipelines/instantid.js';
import { SMOKE_CANNY_DIR, writeSmokeInstantIdSet } from '../src/engine/smoke-instantid.js';

const { values } = parseArgs({
  options: { threads: { type: 'string', default: '2' }, child: { type: 'string' }, home: { type: 'string' } },
});

const CONFIGS: [number, number, number][] = [ // width, height, samples
  [512, 512, 1], [1024, 1024, 1], [1024, 1024, 4], [1536, 1536, 2], [2048, 2048, 1], [768, 768, 8], [2048, 2048, 2],
];

function vmHwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function child(home: string, spec: string): Promise<void> {
  const [width, height, samples] = spec.split(',').map(Number) as [number, number, number];
  const files = {
    model: join(home, 'models', 'smoke'),
    identityNet: join(home, 'models', 'smoke', 'instantid', 'ControlNetModel'),
    ipAdapter: join(home, 'models', 'smoke', 'instantid', 'ip-adapter.safetensors'),
    controlNets: [join(home, SMOKE_CANNY_DIR)],
  };
  const plan = planInstantIdTask(files, { width, height, samples, guidanceScale: 5 });
  const pipeline = await InstantIdPipeline.load(files, { cacheDir: join(home, 'cache', 'onnx'), threads: Number(values.threads) });
  const kps = { data: new Uint8Array(width * height * 3), width, height, channels: 3 as const };
  await pipeline.run({
    faceEmbedding: new Float32Array(512).fill(0.01), kpsImage: kps, controlImages: [kps], prompt: 'a portrait',
    width, height, samples, steps: 1, guidanceScale: 5, seed: 1, controlMask: { box: [0, 0, width / 2, height / 2] },
  });
  await pipeline.dispose();
  const costs = plan.costs.slice(0, 3).map((c) => `${c.name} ${(c.bytes / 2 ** 20).toFixed(0)} MB`).join('; ');
  process.stdout.write(`${JSON.stringify({ estimate: plan.peakBytes, measured: vmHwm(), costs })}\n`);
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'likeness-memory-plan-'));
  try {
    await writeSmokeInstantIdSet(home, { seed: 0 });
    const self = fileURLToPath(import.meta.url);
    // compile every graph once so the measured children only open them
    spawnSync(process.execPath, ['--import', 'tsx', self, '--child', '64,64,1', '--home', home], { encoding: 'utf8' });
    const rows: string[] = [];
    for (const [w, h, n] of CONFIGS) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', `${w},${h},${n}`, '--home', home, '--threads', values.threads!], { encoding: 'utf8' });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !line.startsWith('{')) {
        rows.push(`| ${w}×${h}, ${n} samples | failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')} | | | |`);
        continue;
      }
      const { estimate, measured, costs } = JSON.parse(line) as { estimate: number; measured: number; costs: string };
      const err = ((estimate - measured) / measured) * 100;
      rows.push(`| ${w}×${h}, ${n} samples | ${(estimate / 2 ** 20).toFixed(0)} MB | ${(measured / 2 ** 20).toFixed(0)} MB | ${err >= 0 ? '+' : ''}${err.toFixed(0)}% | ${costs} |`);
      console.error(rows[rows.length - 1]);
    }
    console.log('\nsmoke set, InstantID (IdentityNet + canny ControlNet), CFG, 1 step, one child process per row\n');
    console.log('| task | plan | measured peak RSS | error | biggest planned costs |\n| --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

if (values.child) await child(values.home!, values.child);
else await main();
