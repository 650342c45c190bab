// The InstantID benchmark (issue 5): the service's wiro/instant-id-controlnet-lora tool end to end on
// the smoke set (random weights, written to a temporary LIKENESS_HOME; face detection with the shared
// det_500m, recognition with the smoke set's random graph), on the CPU.
//   task           Run (HTTP, signed, face photo uploaded) → task_postprocess_end seen by Task/Detail
//   prepare        the runner's preprocess: models resolved, LoRAs, face analysis + control maps
//   face           face photo decode, resize_img, SCRFD, alignment + embedding, draw_kps, canny
//   load           pipeline load (cold: compile every graph into an empty cache; warm: reused, 0)
//   text           LPW prompt encoding (both CLIP encoders), both CFG branches
//   step           one denoising step (IdentityNet + canny ControlNet + UNet on the CFG batch), median
//   decode         VAE decode; png: PNG encoding of every sample
//   peak RSS       of this process after all runs
// Run: node --import tsx bench/instantid.ts [--threads N] [--steps N] [--size N] [--memory]
//                                          [--home DIR] [--controlnets 458,455,454]
//   --size N     only the cold 64×64 task and a warm N×N one (so peak RSS is that size's)
//   --home DIR   run on the set already there (e.g. the mid rehearsal set of `likeness models smoke
//                --size mid`) instead of a fresh toy smoke set in a temporary folder; kept afterwards
//   --controlnets  selectedControlnetModel of every case (default 454, canny): e.g. 458,455,454 adds
//                the openpose and depth ControlNets, their maps computed from the face photo
//   --memory     instead: the Memory table, peak RSS of one VAE decode at --size (default 1024) for the
//                smoke and mid-size VAEs with each attention form, each in a child process of its own
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { openDiffusersFolder } from '../src/engine/formats/diffusers-folder.js';
import { loadVaeDecoder } from '../src/engine/nets/vae.js';
import type { AttentionMode } from '../src/engine/onnx/index.js';
import { SMOKE_CONFIG, writeRandomSdxlModel, type RandomSdxlConfigs } from '../src/engine/smoke.js';
import { writeSmokeInstantIdSet } from '../src/engine/smoke-instantid.js';
import { createService } from '../src/service/app.js';
import { sign } from '../src/service/auth.js';
import { guardedNetwork } from '../src/service/network.js';
import { createAvailability } from '../src/tools/catalog.js';
import { defaultTools } from '../src/tools/index.js';
import { instantIdControlnetLora } from '../src/tools/instant-id-controlnet-lora.js';
import { InstantIdRunner, type PhaseTimes } from '../src/tools/instantid-runner.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string' }, steps: { type: 'string' }, size: { type: 'string' }, memory: { type: 'boolean' },
    vae: { type: 'string' }, attention: { type: 'string' }, home: { type: 'string' }, controlnets: { type: 'string' },
  },
});
const threads = Number(values.threads ?? 2);
const steps = Number(values.steps ?? 8);
const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const self = fileURLToPath(import.meta.url);

// ---- the Memory table: one VAE decode per child process ----

/** The VAEs measured: the smoke set's, and bench/engine.ts's mid-size one (32, 64, 128, 128), 2 layers per block. */
const VAES = {
  smoke: { config: SMOKE_CONFIG.vae, describe: 'smoke VAE (8, 16, 16, 16)' },
  mid: { config: { ...SMOKE_CONFIG.vae, block_out_channels: [32, 64, 128, 128], layers_per_block: 2, norm_num_groups: 32 }, describe: 'mid VAE (32, 64, 128, 128) ×2' },
} as const;
type VaeName = keyof typeof VAES;
const ATTENTION: readonly AttentionMode[] = ['plain', 'fused'];

/** In this process: decodes one random [1, 4, size/8, size/8] latent; prints peak RSS and time as JSON. */
async function decodeOnce(name: VaeName, attention: AttentionMode, size: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-bench-vae-'));
  try {
    await writeRandomSdxlModel(dir, { ...(SMOKE_CONFIG as RandomSdxlConfigs), vae: VAES[name].config });
    const model = openDiffusersFolder(dir);
    const decoder = await loadVaeDecoder(model.vae, { attention, intraOpThreads: threads });
    const h = size / 8;
    const latent = new Float32Array(4 * h * h).map((_, i) => Math.sin(i * 0.37));
    const rssBefore = process.resourceUsage().maxRSS / 1024;
    const t0 = performance.now();
    await decoder.decode({ dtype: 'float32', dims: [1, 4, h, h], data: latent });
    const seconds = (performance.now() - t0) / 1000;
    await decoder.dispose();
    model.close();
    console.log(JSON.stringify({ rssBefore, peak: process.resourceUsage().maxRSS / 1024, seconds }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function memoryTable(size: number): string {
  const lines = [
    `VAE decode of one 1×4×${size / 8}×${size / 8} latent (${size}×${size} image), float32, CPU, ORT threads ${threads}; peak RSS of a process that does only that`,
    '| VAE | attention | peak RSS | decode |',
    '| --- | --- | --- | --- |',
  ];
  for (const name of Object.keys(VAES) as VaeName[]) {
    for (const attention of ATTENTION) {
      const args = ['--import', 'tsx', self, '--vae', name, '--attention', attention, '--size', String(size), '--threads', String(threads)];
      const child = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
      if (child.status !== 0) throw new Error(`${name}/${attention}: ${child.stderr}`);
      const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { peak: number; seconds: number };
      lines.push(`| ${VAES[name].describe} | ${attention === 'plain' ? 'plain (MatMul/Softmax/MatMul)' : 'fused (MultiHeadAttention)'} | ${r.peak.toFixed(0)} MB | ${r.seconds.toFixed(2)} s |`);
    }
  }
  return lines.join('\n');
}

if (values.vae) {
  if (!(values.vae in VAES) || !ATTENTION.includes(values.attention as AttentionMode)) throw new Error('--vae smoke|mid --attention plain|fused');
  await decodeOnce(values.vae as VaeName, values.attention as AttentionMode, Number(values.size ?? 1024));
  process.exit(0);
}
if (values.memory) {
  console.log(memoryTable(Number(values.size ?? 1024)));
  process.exit(0);
}

const shared = process.env.LIKENESS_SHARED ?? join(root, '..', 'shared');
const face = readFileSync(join(shared, 'assets', 'faces', 'astronaut.png'));

const ownHome = values.home === undefined;
const home = values.home ?? mkdtempSync(join(tmpdir(), 'likeness-bench-instantid-'));
const controlnets = values.controlnets ?? '454';
const times: PhaseTimes[] = [];
if (ownHome) await writeSmokeInstantIdSet(home, { detector: join(shared, 'assets', 'models', 'det_500m.onnx') });
const runner = new InstantIdRunner({ home, threads, onTimings: (t) => times.push(t) });
const config = loadConfig({ host: '127.0.0.1', port: 0, home }, {});
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const service = await createService(config, {
  tools: defaultTools({ runner, availability: createAvailability(home, instantIdControlnetLora) }), net: guardedNetwork(config), log: quiet, pollMs: 20,
});
const url = await service.listen();
const project = (await service.ctx.store.findProject('default'))!;
const { apiKey, apiSecret } = await service.ctx.store.createKey(project.id);
// a millisecond timestamp, unique per request (the server refuses a nonce seen before)
let lastNonce = 0;
const headers = (): Record<string, string> => {
  lastNonce = Math.max(Date.now(), lastNonce + 1);
  const n = String(lastNonce);
  return { 'x-api-key': apiKey, 'x-nonce': n, 'x-signature': sign(apiKey, apiSecret!, n) };
};

async function task(fields: Record<string, string>): Promise<number> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('inputImage', new Blob([face]), 'astronaut.png');
  const t0 = performance.now();
  const run = (await (await fetch(`${url}/v1/Run/wiro/instant-id-controlnet-lora`, { method: 'POST', headers: headers(), body: form })).json()) as Record<string, unknown>;
  if (run.result !== true) throw new Error(JSON.stringify(run));
  for (;;) {
    const res = await fetch(`${url}/v1/Task/Detail`, { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: JSON.stringify({ taskid: run.taskid }) });
    const t = ((await res.json()) as { tasklist: Record<string, string>[] }).tasklist[0]!;
    if (t.status === 'task_postprocess_end' && t.pexit === '0') return (performance.now() - t0) / 1000;
    if (['task_postprocess_end', 'task_error', 'task_cancel'].includes(t.status!)) throw new Error(`${t.status}: ${t.debugerror}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const allCases: { label: string; fields: Record<string, string> }[] = [
  { label: 'cold 64×64', fields: { width: '64', height: '64' } },
  { label: 'warm 64×64', fields: { width: '64', height: '64' } },
  { label: 'warm 512×512', fields: { width: '512', height: '512' } },
  { label: 'warm 1024×1024 (resize_img)', fields: {} },
  // a new LoRA set: the pipeline is rebuilt (LoRA merged into UNet + text encoders, those graphs compiled)
  { label: '64×64 + LoRA 622 (new set)', fields: { width: '64', height: '64', selectedLoraModel: '622' } },
  { label: '64×64 + LoRA 622 (warm)', fields: { width: '64', height: '64', selectedLoraModel: '622' } },
];
const size = values.size;
const cases = size === undefined ? allCases : [
  allCases[0]!,
  { label: `warm ${size}×${size}`, fields: size === '1024' ? {} : { width: size, height: size } },
];
const rows: string[][] = [];
try {
  for (const c of cases) {
    const total = await task({ prompt: 'a watercolor portrait of a person', steps: String(steps), selectedControlnetModel: controlnets, ...c.fields });
    const t = times.at(-1)!;
    const f = (s: number): string => (s < 0.1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);
    rows.push([c.label, f(total), f(t.prepare), f(t.faceAnalysis), t.warm ? 'warm' : f(t.load), f(t.text), f(median(t.steps)), f(t.decode), f(t.png)]);
  }
} finally {
  await service.close();
  await runner.dispose();
  if (ownHome) rmSync(home, { recursive: true, force: true });
}
const head = ['case', 'task (Run→outputs)', 'prepare', 'face+maps', 'load', 'text', `step (median of ${steps})`, 'decode', 'png'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
const set = ownHome ? 'the smoke set' : `the set in ${home}`;
console.log(`InstantID tool on ${set} (random weights), CPU: ${cpus()[0]?.model ?? '?'} (${availableParallelism()} threads available), ORT threads ${threads}, ${steps} steps, CFG 5, ControlNets ${controlnets} beside IdentityNet, 1 sample`);
console.log(line(head));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
