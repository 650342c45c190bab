// The engine benchmark (issue 4): SDXL text-to-image on the CPU, for the smoke set and for a mid-size
// SDXL-architecture model, both with random weights written to a temporary folder.
//   compile + load   first load: build every graph, write it to an empty compile cache, open sessions
//   cached load      second load of the same files: every graph from the cache
//   step             one denoising step (UNet on the CFG batch of 2 + guidance + scheduler), median
//   end-to-end       generate(): text encoders, all steps, VAE decode, PNG encoding
//   peak RSS         of the process that ran that model (each model runs in its own child process)
// Then the LoRA tables (bench/lora.ts, in a child of their own): the merge kernel, and applying,
// switching and re-scaling LoRAs on the mid model.
// Run: node --import tsx bench/engine.ts [--threads N]   (one model alone: --model smoke|mid; LoRA tables alone: --lora)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SdxlPipeline } from '../src/engine/pipelines/sdxl.js';
import { SMOKE_CONFIG, smokeStateShapes, writeRandomSdxlModel, type RandomSdxlConfigs } from '../src/engine/smoke.js';
import { mergeKernelBench, mergeTable, switchBench, switchTable } from './lora.js';

/**
 * Mid-size: SDXL's block structure at a quarter of its width and depth. UNet channels (64, 128, 256),
 * 2 layers per block, transformer depth 1 in both cross-attention levels, 64-wide heads, context 768
 * (CLIP 256 + 512, 4 layers each), pooled 512; VAE (32, 64, 128, 128) with 2 layers per block.
 */
const MID: RandomSdxlConfigs = {
  unet: {
    ...SMOKE_CONFIG.unet,
    sample_size: 64,
    block_out_channels: [64, 128, 256],
    layers_per_block: 2,
    transformer_layers_per_block: [1, 1, 1],
    attention_head_dim: [1, 2, 4],
    cross_attention_dim: 768,
    norm_num_groups: 32,
    addition_time_embed_dim: 256,
    projection_class_embeddings_input_dim: 512 + 6 * 256,
  },
  vae: { ...SMOKE_CONFIG.vae, block_out_channels: [32, 64, 128, 128], layers_per_block: 2, norm_num_groups: 32, sample_size: 512 },
  text_encoder: { ...SMOKE_CONFIG.text_encoder, hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 4, num_attention_heads: 4 },
  text_encoder_2: {
    ...SMOKE_CONFIG.text_encoder_2, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 4, num_attention_heads: 8, projection_dim: 512,
  },
};

const MODELS = {
  smoke: { configs: SMOKE_CONFIG as RandomSdxlConfigs, size: 64, steps: 8, describe: 'smoke set: UNet (16, 32, 64), VAE (8, 16, 16, 16), CLIP 32 + 32' },
  mid: { configs: MID, size: 512, steps: 4, describe: 'mid: UNet (64, 128, 256) ×2 layers, depth (1, 1), ctx 768; VAE (32, 64, 128, 128)' },
} as const;
type ModelName = keyof typeof MODELS;

interface Row {
  model: ModelName;
  size: number;
  steps: number;
  compileLoad: number;
  cachedLoad: number;
  step: number;
  endToEnd: number;
  peakRssMb: number;
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(model: ModelName, threads: number): Promise<Row> {
  const { configs, size, steps } = MODELS[model];
  const dir = mkdtempSync(join(tmpdir(), `likeness-bench-${model}-`));
  try {
    await writeRandomSdxlModel(join(dir, 'model'), configs);
    const options = { cacheDir: join(dir, 'cache'), threads };
    let t0 = performance.now();
    const cold = await SdxlPipeline.load(join(dir, 'model'), options);
    const compileLoad = seconds(t0);
    await cold.dispose();
    t0 = performance.now();
    const pipe = await SdxlPipeline.load(join(dir, 'model'), options);
    const cachedLoad = seconds(t0);
    try {
      const request = { prompt: 'a photo of a cat', negativePrompt: 'blurry', steps, seed: 1, width: size, height: size };
      await pipe.generate({ ...request, steps: 1 }); // warm-up: ORT's first run of each session
      const marks: number[] = [];
      t0 = performance.now();
      let last = t0;
      await pipe.generate({ ...request, onProgress: () => { const now = performance.now(); marks.push((now - last) / 1000); last = now; } });
      const endToEnd = seconds(t0);
      return { model, size, steps, compileLoad, cachedLoad, step: median(marks.slice(1)), endToEnd, peakRssMb: process.resourceUsage().maxRSS / 1024 };
    } finally {
      await pipe.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parameters per net, in millions. */
function parameterCounts(configs: RandomSdxlConfigs): string {
  const shapes = smokeStateShapes(configs);
  const count = (c: keyof RandomSdxlConfigs): string => {
    let n = 0;
    for (const shape of shapes[c].values()) n += shape.reduce((a, b) => a * b, 1);
    return `${(n / 1e6).toFixed(n < 1e6 ? 2 : 1)}M`;
  };
  return `params UNet ${count('unet')}, VAE ${count('vae')}, CLIP ${count('text_encoder')} + ${count('text_encoder_2')}`;
}

function table(rows: Row[], threads: number): string {
  const head = ['model', 'size', 'steps', 'compile + load', 'cached load', 'step', 'end-to-end', 'peak RSS'];
  const lines = rows.map((r) => [
    r.model, `${r.size}×${r.size}`, String(r.steps), `${r.compileLoad.toFixed(2)} s`, `${r.cachedLoad.toFixed(2)} s`,
    `${r.step.toFixed(3)} s`, `${r.endToEnd.toFixed(2)} s`, `${r.peakRssMb.toFixed(0)} MB`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    `CPU: ${cpus()[0]?.model ?? 'unknown'}, ${availableParallelism()} logical cores; ORT intra-op threads ${threads}; float32; CFG (scale 5); Euler`,
    ...Object.values(MODELS).map((m) => `  ${m.describe}; ${parameterCounts(m.configs)}`),
    '',
    fmt(head),
    fmt(widths.map((w) => '-'.repeat(w))),
    ...lines.map(fmt),
  ].join('\n');
}

const { values } = parseArgs({ options: { model: { type: 'string' }, threads: { type: 'string' }, lora: { type: 'boolean' } } });
const threads = values.threads ? Number(values.threads) : Math.min(4, availableParallelism());
if (values.lora) {
  const result = await switchBench(MODELS.mid.configs, threads);
  console.log(switchTable(result, `the mid model (${MODELS.mid.describe})`, threads));
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB\n`);
  console.log(mergeTable(await mergeKernelBench(threads), threads));
} else if (values.model) {
  if (!(values.model in MODELS)) throw new Error(`--model must be one of ${Object.keys(MODELS).join(', ')}`);
  console.log(JSON.stringify(await measure(values.model as ModelName, threads)));
} else {
  const rows: Row[] = [];
  for (const model of Object.keys(MODELS) as ModelName[]) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--model', model, '--threads', String(threads)], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`the ${model} run failed (exit ${child.status})`);
    rows.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Row);
  }
  console.log(table(rows, threads));
  console.log('');
  const lora = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--lora', '--threads', String(threads)], { stdio: 'inherit' });
  if (lora.status !== 0) throw new Error(`the LoRA run failed (exit ${lora.status})`);
}
