// likeness generate — SDXL text-to-image from a diffusers folder or a single-file checkpoint, with
// per-step progress on the terminal; PNGs are written to --out.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { EngineError } from '../engine/errors.js';
import { SdxlPipeline, type SdxlGenerateRequest } from '../engine/pipelines/sdxl.js';
import { TOKENIZER_STORE } from '../engine/pipelines/sdxl-components.js';
import { SCHEDULER_NAMES } from '../engine/schedulers/index.js';
import { EP_HELP, applyEpOption, fail } from './args.js';
import { describeExecutionProvider } from '../engine/onnx/provider-probe.js';

const HELP = `usage:
  likeness generate --model DIR|FILE --prompt "…" --out DIR [options]

Text-to-image with an SDXL model: a diffusers folder (model_index.json, unet/, vae/, …) or a
single-file .safetensors checkpoint (A1111 / ComfyUI / Civitai). Runs on the CPU in float32.

options:
  --negative TEXT       negative prompt (default: none, i.e. zeros as diffusers does for SDXL)
  --steps N             denoising steps (default 30)
  --scale G             guidance scale (default 5; 1 or less turns classifier-free guidance off)
  --scheduler NAME      ${SCHEDULER_NAMES.join(', ')}
                        (default: the model's scheduler config; Euler for single files)
  --seed N              0 … 2^64-1 (default: random; printed)
  --samples N           images made together as one batch (default 1)
  --width W --height H  multiples of 8 (default: the model's native size, 1024 for SDXL)
  --prompt-mode MODE    standard (77 tokens, literal text; default) or lpw ("(word:1.2)" weights, any length)
  --noise KIND          cpu (torch CPU generator, diffusers' latents for the seed; default) or cuda-philox
  --tokenizers DIR      folder with tokenizer/ and tokenizer_2/ for single-file checkpoints
                        (default $LIKENESS_HOME/${TOKENIZER_STORE})
  --threads N           ONNX Runtime threads per session
  ${EP_HELP}
  --home DIR            LIKENESS_HOME (default ./data): compiled models are cached in its cache/onnx

Try it without downloading anything: likeness models smoke, then --model $LIKENESS_HOME/models/smoke
(random weights: the images are noise).`;

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new EngineError('bad_request', `--${name} must be a whole number, got "${value}"`);
  return n;
}

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        negative: { type: 'string' },
        steps: { type: 'string' },
        scale: { type: 'string' },
        scheduler: { type: 'string' },
        seed: { type: 'string' },
        samples: { type: 'string' },
        width: { type: 'string' },
        height: { type: 'string' },
        'prompt-mode': { type: 'string' },
        noise: { type: 'string' },
        tokenizers: { type: 'string' },
        threads: { type: 'string' },
        ep: { type: 'string' },
        out: { type: 'string' },
        home: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (!v.model || v.prompt === undefined || !v.out) return fail(`--model, --prompt and --out are required\n\n${HELP}`);
  const mode = v['prompt-mode'] ?? 'standard';
  if (mode !== 'standard' && mode !== 'lpw') return fail('--prompt-mode must be standard or lpw');
  const noise = v.noise ?? 'cpu';
  if (noise !== 'cpu' && noise !== 'cuda-philox') return fail('--noise must be cpu or cuda-philox');
  const scale = v.scale === undefined ? 5 : Number(v.scale);
  if (!Number.isFinite(scale)) return fail(`--scale must be a number, got "${v.scale}"`);

  const home = loadConfig(v.home ? { home: v.home } : {}).home;
  applyEpOption(v.ep);
  process.stderr.write(`execution provider: ${(await describeExecutionProvider()).summary}\n`);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  let pipeline: SdxlPipeline | undefined;
  try {
    const threads = intOption('threads', v.threads);
    const request: SdxlGenerateRequest = {
      prompt: v.prompt,
      ...(v.negative !== undefined ? { negativePrompt: v.negative } : {}),
      steps: intOption('steps', v.steps) ?? 30,
      guidanceScale: scale,
      ...(v.scheduler ? { scheduler: v.scheduler } : {}),
      ...(v.seed !== undefined ? { seed: v.seed } : {}),
      samples: intOption('samples', v.samples) ?? 1,
      ...(v.width !== undefined ? { width: intOption('width', v.width)! } : {}),
      ...(v.height !== undefined ? { height: intOption('height', v.height)! } : {}),
      promptMode: mode,
      noise,
      signal: controller.signal,
    };
    const loadStart = Date.now();
    process.stderr.write(`loading ${v.model} (the first load compiles the model; later loads use the cache)…\n`);
    pipeline = await SdxlPipeline.load(resolve(v.model), {
      cacheDir: join(home, 'cache', 'onnx'),
      tokenizerDir: v.tokenizers ? resolve(v.tokenizers) : join(home, TOKENIZER_STORE),
      ...(threads !== undefined ? { threads } : {}),
    });
    process.stderr.write(`loaded in ${((Date.now() - loadStart) / 1000).toFixed(1)} s\n`);

    const started = Date.now();
    const tty = process.stderr.isTTY === true;
    request.onProgress = (step, total) => {
      const secs = (Date.now() - started) / 1000;
      const line = `step ${step}/${total}  ${secs.toFixed(1)} s  (${(secs / step).toFixed(2)} s/step)`;
      process.stderr.write(tty ? `\r${line}${step === total ? '\n' : ''}` : `${line}\n`);
    };
    const result = await pipeline.generate(request);
    await mkdir(v.out, { recursive: true });
    for (const [i, image] of result.images.entries()) {
      const path = join(v.out, `likeness-${result.seed}-${i}.png`);
      await writeFile(path, image.png);
      console.log(`${path}  ${image.width}×${image.height}`);
    }
    console.log(`seed ${result.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    if (err instanceof EngineError) return fail(err.code === 'aborted' ? 'stopped (Ctrl-C)' : err.message);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await pipeline?.dispose();
  }
}
