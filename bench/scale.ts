// Real scale (issue 11 item 6): on a rehearsal set (--size mid, the default, or full; random weights,
// real shapes) one table — time to write the set; the whole InstantID pipeline's first compile and
// cached open; one task at each --res (1 step measured, 20 extrapolated: text + 20 × step + decode);
// LoRA scale-change and set-change cost on the warm pipeline (setLoras); peak RSS beside the memory
// plan's estimate; compile cache size on disk. The GPU script (bench/gpu.sh) calls this with its own
// provider settings.
// Run: node --import tsx bench/scale.ts [--size mid|full] [--res 512,1024] [--threads 2] [--home DIR] [--keep]
//   --home DIR  use (or write, if it has none) the set there; default a temporary folder, removed after
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSdxlModel } from '../src/engine/formats/diffusers-folder.js';
import { readLora } from '../src/engine/formats/lora.js';
import { loraTargetsOfModel } from '../src/engine/formats/lora-keymap.js';
import { planInstantIdTask } from '../src/engine/memory-plan.js';
import { InstantIdPipeline } from '../src/engine/pipelines/instantid.js';
import { SMOKE_CANNY_DIR, SMOKE_LORA_FILE, SMOKE_LORA_FILE_2, writeSmokeInstantIdSet } from '../src/engine/smoke-instantid.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'mid' }, res: { type: 'string', default: '512,1024' }, threads: { type: 'string', default: '2' },
    home: { type: 'string' }, keep: { type: 'boolean' },
  },
});
const size = values.size === 'full' ? 'full' : 'mid';
const sizes = values.res!.split(',').map(Number);
const threads = Number(values.threads);

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const vmHwm = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024;
const gb = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GB`;
const dirBytes = (dir: string): number => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile()).reduce((n, d) => n + statSync(join(d.parentPath, d.name)).size, 0) : 0);

async function main(): Promise<void> {
  const home = values.home ?? mkdtempSync(join(tmpdir(), `likeness-scale-${size}-`));
  const rows: [string, string][] = [];
  const row = (k: string, v: string): void => { rows.push([k, v]); console.error(`${k}: ${v}`); };
  row('set', `${size} rehearsal set (random weights, F16 files), ORT ${threads} threads, float32 compute`);
  try {
    const model = join(home, 'models', 'smoke');
    if (!existsSync(join(model, 'unet', 'config.json'))) {
      const t0 = performance.now();
      await writeSmokeInstantIdSet(home, { size, catalog: true });
      row('write the set', `${seconds(t0).toFixed(0)} s, ${gb(dirBytes(join(home, 'models')))}`);
    }
    const files = {
      model, identityNet: join(model, 'instantid', 'ControlNetModel'), ipAdapter: join(model, 'instantid', 'ip-adapter.safetensors'),
      controlNets: [join(home, SMOKE_CANNY_DIR)],
    };
    const cacheDir = join(home, 'cache', 'onnx');
    const options = { cacheDir, threads, loraSlots: true };
    let t0 = performance.now();
    let pipeline = await InstantIdPipeline.load(files, options);
    row('first compile + open (all nets, LoRA slots)', `${seconds(t0).toFixed(0)} s`);
    await pipeline.dispose();
    t0 = performance.now();
    pipeline = await InstantIdPipeline.load(files, options);
    row('cached open (all nets)', `${seconds(t0).toFixed(1)} s`);
    row('compile cache on disk', gb(dirBytes(cacheDir)));

    const sdxl = openSdxlModel(model);
    const targets = loraTargetsOfModel(sdxl);
    const a = readLora(join(home, SMOKE_LORA_FILE), targets, { id: '622' });
    const b = readLora(join(home, SMOKE_LORA_FILE_2), targets, { id: '480' });
    sdxl.close();
    const task = async (res: number, steps: number): Promise<{ text: number; step: number; decode: number }> => {
      const kps = { data: new Uint8Array(res * res * 3), width: res, height: res, channels: 3 as const };
      const marks: number[] = [];
      const t = performance.now();
      await pipeline.run({
        faceEmbedding: new Float32Array(512).fill(0.01), kpsImage: kps, controlImages: [kps], prompt: 'a portrait, creepy creature',
        width: res, height: res, samples: 1, steps, guidanceScale: 5, seed: 1, controlMask: { box: [0, 0, res / 2, res / 2] },
        onProgress: () => marks.push(performance.now()),
        trace: (name) => { if (name === 'prompt_embeds') marks.unshift(performance.now()); },
      });
      const end = performance.now();
      const text = (marks[0]! - t) / 1000;
      const step = (marks[marks.length - 1]! - marks[0]!) / 1000 / steps;
      return { text, step, decode: (end - marks[marks.length - 1]!) / 1000 };
    };
    for (const res of sizes) {
      const plan = planInstantIdTask(files, { width: res, height: res, samples: 1, guidanceScale: 5, loras: [{ lora: a, scale: 0.5 }] });
      pipeline.setLoras([{ lora: a, scale: 0.5 }]);
      const r = await task(res, 1);
      row(`InstantID ${res}², LoRA 622 at 0.5: text / 1 step / decode`, `${r.text.toFixed(1)} / ${r.step.toFixed(1)} / ${r.decode.toFixed(1)} s; 20 steps ≈ ${(r.text + 20 * r.step + r.decode).toFixed(0)} s`);
      row(`peak RSS after ${res}² vs plan`, `${gb(vmHwm())} measured, ${gb(plan.peakBytes)} planned`);
    }
    const change = (what: string, loras: Parameters<InstantIdPipeline['setLoras']>[0]): void => {
      const t = performance.now();
      pipeline.setLoras(loras);
      row(`LoRA ${what}`, `${(seconds(t) * 1000).toFixed(0)} ms, cache ${gb(dirBytes(cacheDir))}`);
    };
    change('scale change 622: 0.5 → 0.8', [{ lora: a, scale: 0.8 }]);
    change('set change 622 → 480', [{ lora: b, scale: 0.8 }]);
    change('both, 622 at 0.5 + 480 at 0.8', [{ lora: a, scale: 0.5 }, { lora: b, scale: 0.8 }]);
    await pipeline.dispose();
    a.close();
    b.close();
  } finally {
    if (!values.home && !values.keep) rmSync(home, { recursive: true, force: true });
  }
  console.log('\n| measure | value |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

await main();
