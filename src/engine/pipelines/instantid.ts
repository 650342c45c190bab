// InstantID on SDXL (instantid.md): the basic pipeline (pipeline_stable_diffusion_xl_instantid.py)
// and the `_full` one (multi-ControlNet, face-region control mask, weighted long prompts), in their
// order of operations:
//   text → prompt embeds [1, L, D] (standard or LPW); face embedding (raw, NOT normalised) →
//   Resampler([0; e]) → face tokens [2, T, D]; control images → [3, H, W] in [0, 1];
//   per step: latent_model_input = scale(cat([latents] * 2)); IdentityNet(sample, t, face tokens,
//   kps image) × scale (× face-region mask), extra ControlNets(sample, t, TEXT context, their image)
//   × scale, summed; UNet(sample, t, cat(text, face tokens), residuals, ip scale, region mask);
//   uncond + g·(cond − uncond); scheduler step. Then VAE decode → [n, H, W, 3] in [0, 1].
// CFG batches are [uncond × n, cond × n] everywhere (negative text, Resampler(0) tokens).
import { randomBytes } from 'node:crypto';
import { EngineError } from '../errors.js';
import type { F32 } from '../nets/net-session.js';
import { lorasFor, type AppliedLora } from '../lora/apply.js';
import { runtimeLoraSupport } from '../lora/runtime.js';
import { parseSeed } from '../rng/seed.js';
import { createScheduler } from '../schedulers/index.js';
import { noiseSource, type NoiseKind } from './denoise-math.js';
import { disposeNets, loadInstantIdNets, openInstantIdParts, type InstantIdFiles, type InstantIdLoadOptions, type InstantIdNets, type InstantIdParts } from './instantid-load.js';
import {
  batchRows, concatSequence, controlImageChw, controlKeep, controlMaskMaps, controlMaskTensor, maskResiduals, encodePng, f32, generationSize, guidance, sumTensors,
  timeIds, toNhwc01, toRgb8, unscaleLatents, type ControlMaskInput, type ImageU8,
} from './instantid-prep.js';
import { encodeText, type PromptMode } from './instantid-text.js';

export type { ControlMaskInput, ImageU8, PromptMode, InstantIdFiles, InstantIdLoadOptions, InstantIdParts };

/** An intermediate the pipeline reports (names as the goldens spell them; see run()). */
export interface TraceTensor {
  dims: readonly number[];
  data: Float32Array | BigInt64Array;
}

export interface InstantIdRunOptions {
  /** The raw ArcFace embedding (512-d for antelopev2), or N of them stacked (N key/value tokens). */
  faceEmbedding: Float32Array;
  /** IdentityNet's control image (draw_kps). Sets the output size unless width/height are given. */
  kpsImage: ImageU8;
  /**
   * One control image per extra ControlNet (canny, depth, pose maps …), in the nets' order. A net
   * whose entry is null or left out is off for this run (never run), so one loaded pipeline serves
   * any selection of its extra nets.
   */
  controlImages?: readonly (ImageU8 | null | undefined)[];
  prompt: string;
  /** standard mode: undefined/null is zeros when the model says force_zeros_for_empty_prompt. */
  negativePrompt?: string | null;
  /** 'lpw' (default; the `_full` pipeline the demos run) or 'standard' (the basic pipeline). */
  promptMode?: PromptMode;
  /** Default 30. */
  steps?: number;
  /** Default 5; guidance runs only above 1. */
  /** diffusers' pipeline `eta`, passed to step(): DDIM's η, TCD's γ. Default 0, as the pipeline's. */
  eta?: number;
  guidanceScale?: number;
  /** IP-Adapter attention scale; default 0.8. */
  ipAdapterScale?: number;
  /** IdentityNet conditioning scale; default 0.8. */
  identitynetScale?: number;
  /** Per extra ControlNet; default 1.0 each (diffusers'). */
  controlnetScales?: readonly number[];
  /** Fractions of the schedule, one for every net (IdentityNet first) or one for all; defaults 0 and 1. */
  controlGuidanceStart?: number | readonly number[];
  controlGuidanceEnd?: number | readonly number[];
  /** "Enhance face region": confines IdentityNet's residuals and the IP attention to this region. */
  controlMask?: ControlMaskInput;
  /** Floored to multiples of the VAE scale factor (8); default: the kps image's size. */
  width?: number;
  height?: number;
  /** Images made together, as one batch (num_images_per_prompt). Default 1. */
  samples?: number;
  /** Starting latents [samples, 4, h, w] before init_noise_sigma (diffusers multiplies given latents too). */
  latents?: Float32Array;
  /** 0 … 2^64−1; random when left out. Draws the latents (unless given) and any scheduler noise. */
  seed?: string | number | bigint;
  /** 'cpu' (default): torch.Generator('cpu'); 'cuda-philox': A1111's CUDA emulation. */
  noise?: NoiseKind;
  /** A diffusers scheduler class name; default the model's scheduler config. */
  scheduler?: string;
  /** After each denoising step: (step counting from 1, total). */
  onProgress?: (step: number, total: number) => void;
  /** Checked between steps and passed to every net run; aborting throws EngineError('aborted'). */
  signal?: AbortSignal;
  /** Receives every intermediate (ids, embeds, per-step inputs, residuals, noise, latents, image). */
  trace?: (name: string, t: TraceTensor) => void;
}

export interface InstantIdResult {
  /** [samples, H, W, 3] float32 in [0, 1] (diffusers output_type "np"). */
  images: F32;
  width: number;
  height: number;
  seed: bigint;
}

const MAX_SAMPLES = 16;

function aborted(): EngineError {
  const err = new EngineError('aborted', 'generation aborted');
  err.name = 'AbortError';
  return err;
}

function checkNumber(name: string, v: number, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new EngineError('bad_request', `${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got ${v}`);
  }
  return v;
}

/** A per-net list from a number or a list (one for every net). */
function perNet(name: string, v: number | readonly number[] | undefined, nets: number, fallback: number): number[] {
  if (v === undefined) return Array<number>(nets).fill(fallback);
  const list = typeof v === 'number' ? Array<number>(nets).fill(v) : [...v];
  if (list.length !== nets) throw new EngineError('bad_request', `${name} has ${list.length} values for ${nets} ControlNets (IdentityNet first)`);
  return list.map((x, i) => checkNumber(`${name}[${i}]`, x, 0, 1));
}

export class InstantIdPipeline {
  private constructor(private readonly nets: InstantIdNets) {}

  /** From opened parts (the weight sources may be closed once this resolves). */
  static async fromParts(parts: InstantIdParts, options: InstantIdLoadOptions): Promise<InstantIdPipeline> {
    return new InstantIdPipeline(await loadInstantIdNets(parts, options));
  }

  /** From files: an SDXL model, the IdentityNet folder, ip-adapter.bin and extra ControlNet folders. */
  static async load(files: InstantIdFiles, options: InstantIdLoadOptions): Promise<InstantIdPipeline> {
    const { parts, close } = await openInstantIdParts(files);
    try {
      return await InstantIdPipeline.fromParts(parts, options);
    } finally {
      close();
    }
  }

  /** Number of ControlNets besides the IdentityNet. */
  get extraControlNets(): number {
    return this.nets.controlNets.length - 1;
  }

  /** The face embedding size the Resampler takes (512 for InstantID). */
  get embeddingDim(): number {
    return this.nets.resampler.config.embeddingDim;
  }

  dispose(): Promise<void> {
    return disposeNets(this.nets);
  }

  /** Whether the nets were built with run-time LoRA slots (InstantIdLoadOptions.loraSlots). */
  get hasLoraSlots(): boolean {
    return this.nets.unet.loraSlots.size > 0;
  }

  /**
   * Whether setLoras() can apply these LoRAs: { ok: true }, or why not (DoRA, a convolution, or
   * nets built without slots) — then fuse them at load (withLoras) instead.
   */
  runtimeLoraSupport(applied: readonly AppliedLora[]): { ok: true } | { ok: false; reason: string } {
    if (!this.hasLoraSlots) {
      return applied.some((a) => a.scale !== 0) ? { ok: false, reason: 'the pipeline was loaded without LoRA slots' } : { ok: true };
    }
    for (const component of ['unet', 'text_encoder', 'text_encoder_2'] as const) {
      const r = runtimeLoraSupport(lorasFor(component, applied));
      if (!r.ok) return r;
    }
    return { ok: true };
  }

  /**
   * The LoRAs (with their scales) that later runs apply, as branches in the UNet and both text
   * encoders: no rebuild, nothing written. [] returns to the base model. Throws
   * EngineError('lora_not_runtime') when runtimeLoraSupport() says no, leaving the LoRAs as they were.
   */
  setLoras(applied: readonly AppliedLora[]): void {
    const ok = this.runtimeLoraSupport(applied);
    if (!ok.ok) throw new EngineError('lora_not_runtime', `these LoRAs cannot be applied at run time: ${ok.reason}`);
    if (!this.hasLoraSlots) return;
    const { unet, encoder1, encoder2 } = this.nets;
    unet.setLoras(lorasFor('unet', applied));
    encoder1.setLoras(lorasFor('text_encoder', applied));
    encoder2.setLoras(lorasFor('text_encoder_2', applied));
  }

  async run(o: InstantIdRunOptions): Promise<InstantIdResult> {
    const { nets } = this;
    const trace = o.trace ?? (() => undefined);
    const signal = o.signal;
    const runOptions = signal ? { signal } : {};
    const check = (): void => {
      if (signal?.aborted) throw aborted();
    };
    check();
    const n = checkNumber('samples', o.samples ?? 1, 1, MAX_SAMPLES, true);
    const steps = checkNumber('steps', o.steps ?? 30, 1, 1000, true);
    const g = checkNumber('guidanceScale', o.guidanceScale ?? 5, 0, 100);
    const cfg = g > 1;
    const ipScale = checkNumber('ipAdapterScale', o.ipAdapterScale ?? 0.8, -10, 10);
    const extras = nets.controlNets.length - 1;
    const images = o.controlImages ?? [];
    if (images.length > extras) throw new EngineError('bad_request', `${images.length} control images for ${extras} extra ControlNets`);
    const scales = [o.identitynetScale ?? 0.8, ...(o.controlnetScales ?? Array<number>(extras).fill(1))];
    if (scales.length !== extras + 1) throw new EngineError('bad_request', `controlnetScales has ${scales.length - 1} values for ${extras} extra ControlNets`);
    scales.forEach((s, i) => checkNumber(i === 0 ? 'identitynetScale' : `controlnetScales[${i - 1}]`, s, -10, 10));
    const starts = perNet('controlGuidanceStart', o.controlGuidanceStart, extras + 1, 0);
    const ends = perNet('controlGuidanceEnd', o.controlGuidanceEnd, extras + 1, 1);
    const { width: W, height: H } = generationSize(o.kpsImage, nets.vaeScale, o.width, o.height);
    const B = cfg ? 2 * n : n;

    // Inputs checked and prepared before any net runs: face embedding size, control images [B, 3, H, W],
    // the face-region mask [1, 1, H, W] and its maps, the scheduler, the seed and the latents' shape.
    const E = nets.resampler.config.embeddingDim;
    if (o.faceEmbedding.length === 0 || o.faceEmbedding.length % E !== 0) {
      throw new EngineError('bad_request', `faceEmbedding has ${o.faceEmbedding.length} values; the Resampler takes ${E}-d embeddings`);
    }
    const N = o.faceEmbedding.length / E;
    const conds = nets.controlNets.map((_, k) => {
      const img = k === 0 ? o.kpsImage : images[k - 1];
      if (!img) return undefined;
      const cond = f32([B, 3, H, W], batchRows([controlImageChw(k === 0 ? 'kpsImage' : `controlImages[${k - 1}]`, img, W, H)], B));
      trace(`control_image.${k}`, cond);
      return cond;
    });
    const mask = o.controlMask ? controlMaskTensor(o.controlMask, W, H) : undefined;
    const maskMaps = mask ? controlMaskMaps(mask) : undefined;
    if (mask) trace('control_mask', mask);
    for (const [s, m] of maskMaps ?? []) trace(`mask_weight_s${s}`, m);

    const scheduler = createScheduler(nets.schedulerConfig, o.scheduler);
    const seed = o.seed !== undefined ? parseSeed(o.seed) : randomBytes(8).readBigUInt64LE();
    const generator = noiseSource(o.noise ?? 'cpu', seed);
    const latentShape = [n, nets.unet.config.inChannels, H / nets.vaeScale, W / nets.vaeScale];
    const count = latentShape.reduce((a, b) => a * b, 1);
    if (o.latents && o.latents.length !== count) throw new EngineError('bad_request', `latents has ${o.latents.length} values; expected [${latentShape.join(', ')}]`);

    // 3.1 text: [1, L, D] each; CFG batch [negative × n, prompt × n]
    const text = await encodeText(nets, o.promptMode ?? 'lpw', o.prompt, o.negativePrompt);
    for (const [name, ids] of Object.entries(text.ids)) trace(name, ids);
    const { seqLen: L, dim: D, pooledDim: P } = text;
    trace('prompt_embeds', { dims: [1, L, D], data: text.promptEmbeds });
    trace('negative_prompt_embeds', { dims: [1, L, D], data: text.negativePromptEmbeds });
    trace('pooled_prompt_embeds', { dims: [1, P], data: text.pooledPromptEmbeds });
    trace('negative_pooled_prompt_embeds', { dims: [1, P], data: text.negativePooledPromptEmbeds });
    const textCtx = f32([B, L, D], batchRows(cfg ? [text.negativePromptEmbeds, text.promptEmbeds] : [text.promptEmbeds], n));
    const pooled = f32([B, P], batchRows(cfg ? [text.negativePooledPromptEmbeds, text.pooledPromptEmbeds] : [text.pooledPromptEmbeds], n));
    check();

    // 3.2 face tokens: Resampler(e.reshape(1, -1, E)); the uncond branch gets Resampler(zeros_like)
    const idTokens = await nets.resampler.run(f32([1, N, E], o.faceEmbedding), runOptions); // [1, T, D]
    const zeroTokens = N === 1 ? await nets.resampler.zeroTokens() : await nets.resampler.run(f32([1, N, E], new Float32Array(N * E)), runOptions);
    const T = idTokens.dims[1]!;
    const faceCtx = f32([B, T, idTokens.dims[2]!], batchRows(cfg ? [zeroTokens.data, idTokens.data] : [idTokens.data], n));
    trace('prompt_image_emb', faceCtx);

    // 5. timesteps, 6. latents
    scheduler.setTimesteps(steps);
    const timesteps = scheduler.timesteps;
    trace('timesteps', { dims: [timesteps.length], data: Float32Array.from(timesteps) });
    let latents = o.latents ? o.latents.slice() : generator.randn(latentShape);
    const sigma = Math.fround(scheduler.initNoiseSigma);
    latents = latents.map((v) => v * sigma);

    // 7.2 added conditioning; UNet context = cat(text, face tokens) along the sequence
    const ids = f32([B, 6], timeIds(H, W, B));
    trace('add_time_ids', ids);
    const unetCtx = concatSequence(textCtx, faceCtx);

    // 8. denoising loop
    for (let i = 0; i < timesteps.length; i++) {
      check();
      const t = timesteps[i]!;
      const lmi = f32([B, ...latentShape.slice(1)], scheduler.scaleModelInput(cfg ? batchRows([latents], 2) : latents, t));
      trace(`step${i}.latent_model_input`, lmi);
      const residuals: { down: F32[]; mid: F32 }[] = [];
      for (const [k, net] of nets.controlNets.entries()) {
        const scale = scales[k]! * (controlKeep(i, timesteps.length, starts[k]!, ends[k]!) ? 1 : 0);
        const cond = conds[k];
        if (scale === 0 || !cond) continue; // at scale 0 diffusers still runs it, for residuals of zeros
        const r = await net.run({
          sample: lmi, timestep: t, encoderHiddenStates: k === 0 ? faceCtx : textCtx, controlnetCond: cond,
          textEmbeds: pooled, timeIds: ids, conditioningScale: scale,
        }, runOptions);
        r.down.forEach((d, j) => trace(`step${i}.net${k}.down_${j}`, d));
        trace(`step${i}.net${k}.mid`, r.mid);
        residuals.push(k === 0 && maskMaps ? maskResiduals(r, maskMaps) : r);
      }
      const summed = residuals.length > 0
        ? { down: residuals[0]!.down.map((_, j) => sumTensors(residuals.map((r) => r.down[j]!))), mid: sumTensors(residuals.map((r) => r.mid)) }
        : undefined;
      if (summed) {
        summed.down.forEach((d, j) => trace(`step${i}.controlnet_down_${j}`, d));
        trace(`step${i}.controlnet_mid`, summed.mid);
      }
      const noisePred = await nets.unet.run({
        sample: lmi, timestep: t, encoderHiddenStates: unetCtx, textEmbeds: pooled, timeIds: ids,
        ...(summed ? { controlResiduals: summed } : {}), ipAdapterScale: ipScale, ...(mask ? { regionMask: mask } : {}),
      }, runOptions);
      trace(`step${i}.noise_pred_uncond_text`, noisePred);
      const eps = cfg ? guidance(noisePred.data, g) : noisePred.data;
      latents = scheduler.step(eps, t, latents, { generator, shape: latentShape, eta: o.eta ?? 0 });
      trace(`step${i}.latents`, { dims: [...latentShape], data: latents });
      o.onProgress?.(i + 1, timesteps.length);
    }

    // decode → [n, H, W, 3] in [0, 1]
    check();
    const decoded = await nets.vae.decode(f32(latentShape, unscaleLatents(latents, nets.vaeConfig.scalingFactor)), runOptions);
    const out = toNhwc01(decoded);
    trace('image', out);
    return { images: out, width: W, height: H, seed };
  }
}

/** Image i of a result as interleaved 8-bit RGB (numpy_to_pil's rounding). */
export function resultRgb8(r: InstantIdResult, i: number): Uint8Array {
  const size = r.width * r.height * 3;
  return toRgb8(r.images.data.subarray(i * size, (i + 1) * size));
}

/** Image i of a result as PNG bytes. */
export function resultPng(r: InstantIdResult, i: number): Promise<Uint8Array> {
  return encodePng(resultRgb8(r, i), r.width, r.height);
}
