// SDXL text-to-image, as diffusers' StableDiffusionXLPipeline.__call__ (v0.30.3) runs it:
//
//   encode_prompt ─▶ set_timesteps ─▶ latents = randn([B, 4, H/f, W/f]) · init_noise_sigma
//   for t in timesteps:
//     x = scale_model_input(cat([latents] · 2), t)                       # batch [uncond, cond]
//     ε = unet(x, t, context, text_embeds = pooled, time_ids = (H, W, 0, 0, H, W))
//     ε = ε_u + g·(ε_c − ε_u)                                            # only when g > 1
//     latents = scheduler.step(ε, t, latents, generator)
//   image = vae.decode(latents / scaling_factor) ─▶ clamp(x/2 + 0.5) ─▶ uint8 RGB ─▶ PNG
//
// The torch CPU generator is seeded once and used for the initial noise and any stochastic step, so
// a seed gives diffusers' latents (generator=torch.Generator('cpu').manual_seed(seed)). Text is
// encoded as the standard pipeline does (77 tokens, literal text) or with InstantID's long-prompt
// weighting ('lpw': "(word:1.2)", any length).
//
// Precision: float32 on the CPU. For CUDA / TensorRT, load with dtype 'float16': the text encoders
// and the UNet are built in half precision (inputs and outputs stay float32), and the VAE decoder
// stays float32 when its config says force_upcast, as diffusers upcasts it (SDXL's VAE overflows in
// float16). That path is written but has not been run on a GPU here.
// No invisible watermark is applied (diffusers adds one only when the package is installed).
import { randomBytes } from 'node:crypto';
import { EngineError } from '../errors.js';
import { openSdxlModel } from '../formats/diffusers-folder.js';
import type { ModelConfig } from '../formats/keymaps/source.js';
import { f32 } from '../nets/net-session.js';
import { vaeScaleFactor } from '../nets/vae-config.js';
import { parseSeed } from '../rng/seed.js';
import { createScheduler } from '../schedulers/index.js';
import { encodePromptLpw, encodePromptStandard, type PromptEmbeddings } from '../text/encode.js';
import {
  batchRows, doubled, encodePng, guidance, initialLatents, noiseSource, timeIds, toRgb8, unscaleLatents, type NoiseKind,
} from './denoise-math.js';
import { loadSdxlParts, type SdxlLoadOptions, type SdxlParts } from './sdxl-components.js';

export type { SdxlLoadOptions } from './sdxl-components.js';
export type { NoiseKind } from './denoise-math.js';

export interface SdxlGenerateRequest {
  prompt: string;
  /** undefined/null: zeros when the model says force_zeros_for_empty_prompt (standard mode); "" is encoded. */
  negativePrompt?: string | null;
  /** Default 50 (diffusers'). */
  steps?: number;
  /** Default 5.0; classifier-free guidance runs only above 1. */
  /** diffusers' pipeline `eta`, passed to step(): DDIM's η, TCD's γ (TCD-LoRA cards use 0.3). Default 0, as the pipeline's. */
  eta?: number;
  guidanceScale?: number;
  /** A diffusers scheduler class name; default: the model's scheduler config. */
  scheduler?: string;
  /** Multiples of 8; default unet.sample_size × the VAE's scale factor (1024 for SDXL). */
  width?: number;
  height?: number;
  /** Images made together, as one batch (num_images_per_prompt). Default 1. */
  samples?: number;
  /** 0 … 2^64−1; random when left out (the result says which). */
  seed?: string | number | bigint;
  /** Default 'cpu' (torch's CPU generator). */
  noise?: NoiseKind;
  /** Default 'standard' (diffusers' encode_prompt); 'lpw' is InstantID's weighted long-prompt encoding. */
  promptMode?: 'standard' | 'lpw';
  /** Called after each denoising step with (step, total), step counting from 1. */
  onProgress?: (step: number, total: number) => void;
  /** Checked between steps (and passed to every net run); aborting throws EngineError('aborted'). */
  signal?: AbortSignal;
  /** Also return the initial and final latents. */
  returnLatents?: boolean;
}

export interface GeneratedImage {
  width: number;
  height: number;
  png: Uint8Array;
}

export interface SdxlGenerateResult {
  images: GeneratedImage[];
  seed: bigint;
  latents?: { shape: number[]; initial: Float32Array; final: Float32Array };
}

const MAX_SAMPLES = 16;

function aborted(): EngineError {
  const err = new EngineError('aborted', 'generation aborted');
  err.name = 'AbortError';
  return err;
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EngineError('bad_request', `${name} must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export class SdxlPipeline {
  private constructor(private readonly parts: SdxlParts, readonly modelPath: string) {}

  /** Opens a diffusers SDXL folder or a single-file checkpoint and readies every part (compiling on first use). */
  static async load(modelPathOrFolder: string, options: SdxlLoadOptions): Promise<SdxlPipeline> {
    const model = openSdxlModel(modelPathOrFolder, options.overrides ? { overrides: options.overrides } : {});
    try {
      return new SdxlPipeline(await loadSdxlParts(model, options), modelPathOrFolder);
    } finally {
      model.close(); // weights are read while compiling; the sessions hold their own copy
    }
  }

  get cacheHits(): Readonly<Record<string, boolean>> {
    return this.parts.cacheHits;
  }

  get schedulerConfig(): Readonly<ModelConfig> {
    return this.parts.schedulerConfig;
  }

  /** The image side the model was trained at (unet sample_size × the VAE's scale factor; 1024 for SDXL). */
  get defaultSize(): number {
    return this.parts.sampleSize * vaeScaleFactor(this.parts.vae.config);
  }

  async generate(request: SdxlGenerateRequest): Promise<SdxlGenerateResult> {
    const { unet, vae } = this.parts;
    const signal = request.signal;
    const check = (): void => { if (signal?.aborted) throw aborted(); };
    const run = async <T>(p: Promise<T>): Promise<T> => {
      try {
        return await p;
      } catch (err) {
        if (signal?.aborted) throw aborted();
        throw err;
      }
    };
    const factor = vaeScaleFactor(vae.config);
    const multiple = Math.max(8, factor);
    const width = request.width ?? this.defaultSize;
    const height = request.height ?? this.defaultSize;
    for (const [name, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % multiple !== 0) {
        throw new EngineError('bad_request', `${name} must be a positive multiple of ${multiple}, got ${v}`);
      }
    }
    const steps = checkInt('steps', request.steps ?? 50, 1, 1000);
    const samples = checkInt('samples', request.samples ?? 1, 1, MAX_SAMPLES);
    const scale = request.guidanceScale ?? 5;
    if (!Number.isFinite(scale)) throw new EngineError('bad_request', `guidanceScale must be a number, got ${scale}`);
    const seed = request.seed === undefined ? randomBytes(8).readBigUInt64BE() : parseSeed(request.seed);
    const cfg = scale > 1;
    check();

    // 1. text
    const embeds = await run(this.encodeText(request));
    const { seqLen, dim, pooledDim } = embeds;
    const contextParts = cfg ? [embeds.negativePromptEmbeds, embeds.promptEmbeds] : [embeds.promptEmbeds];
    const pooledParts = cfg ? [embeds.negativePooledPromptEmbeds, embeds.pooledPromptEmbeds] : [embeds.pooledPromptEmbeds];
    const rows = contextParts.length * samples;
    const context = f32([rows, seqLen, dim], batchRows(contextParts, samples)); // [2B, S, 2048]
    const textEmbeds = f32([rows, pooledDim], batchRows(pooledParts, samples)); // [2B, 1280]
    const ids = f32([rows, 6], timeIds(height, width, rows)); // [2B, 6]

    // 2. schedule and initial noise
    const scheduler = createScheduler(this.parts.schedulerConfig, request.scheduler);
    scheduler.setTimesteps(steps);
    const shape = [samples, unet.config.inChannels, height / factor, width / factor];
    const generator = noiseSource(request.noise ?? 'cpu', seed);
    let latents = initialLatents(generator, shape, scheduler.initNoiseSigma); // [B, 4, h, w]
    const initial = request.returnLatents ? latents.slice() : undefined;

    // 3. denoise
    const total = scheduler.timesteps.length;
    const modelShape = [rows, shape[1]!, shape[2]!, shape[3]!];
    for (let i = 0; i < total; i++) {
      check();
      const t = scheduler.timesteps[i]!;
      const input = scheduler.scaleModelInput(cfg ? doubled(latents) : latents, t); // [2B, 4, h, w]
      const out = await run(unet.run({ sample: f32(modelShape, input), timestep: t, encoderHiddenStates: context, textEmbeds, timeIds: ids }, signal ? { signal } : {}));
      const noise = cfg ? guidance(out.data, scale) : out.data;
      latents = scheduler.step(noise, t, latents, { generator, shape, eta: request.eta ?? 0 });
      request.onProgress?.(i + 1, total);
    }

    // 4. decode, one image at a time (bounded memory; each item is decoded as in a batch)
    const images: GeneratedImage[] = [];
    const per = latents.length / samples;
    const unscaled = unscaleLatents(latents, vae.config.scalingFactor);
    for (let b = 0; b < samples; b++) {
      check();
      const decoded = await run(vae.decode(f32([1, shape[1]!, shape[2]!, shape[3]!], unscaled.slice(b * per, (b + 1) * per)), signal ? { signal } : {}));
      const [, , h, w] = decoded.dims as [number, number, number, number];
      images.push({ width: w, height: h, png: await encodePng(toRgb8(decoded.data, h, w), w, h) });
    }
    return {
      images,
      seed,
      ...(initial ? { latents: { shape, initial, final: latents } } : {}),
    };
  }

  private encodeText(request: SdxlGenerateRequest): Promise<PromptEmbeddings> {
    const { tokenizer1, tokenizer2, encoder1, encoder2, forceZerosForEmptyPrompt } = this.parts;
    const encoders = { encoder1, encoder2 };
    const prompt = { prompt: request.prompt, negative: request.negativePrompt ?? null };
    if ((request.promptMode ?? 'standard') === 'lpw') return encodePromptLpw(prompt, tokenizer1, encoders);
    return encodePromptStandard(prompt, { tokenizer1, tokenizer2 }, encoders, { forceZerosForEmptyPrompt });
  }

  async dispose(): Promise<void> {
    const { encoder1, encoder2, unet, vae } = this.parts;
    await Promise.all([encoder1.dispose(), encoder2.dispose(), unet.dispose(), vae.dispose()]);
  }
}
