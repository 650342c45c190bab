// Loading an SDXL model's parts for the text-to-image pipeline: the two CLIP tokenizers, both text
// encoders, the UNet and the VAE decoder, each compiled once through the on-disk cache (keyed by a
// fingerprint of the weight files) and opened as an ONNX Runtime session.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { parsePythonJson } from '../formats/pyjson.js';
import { SDXL_COMPONENTS, type ComponentName, type ModelConfig, type SdxlModel } from '../formats/keymaps/source.js';
import type { SingleFileOptions } from '../formats/single-file.js';
import { fingerprintFiles, type ExecutionProvider, type FloatDType } from '../onnx/index.js';
import { loadClipTextEncoder, type ClipTextEncoder } from '../nets/clip-text.js';
import { float32Source } from '../nets/sdxl-weights.js';
import { createUnetRunner, type UnetRunner } from '../nets/unet-runner.js';
import { loadVaeDecoder, type VaeDecoder } from '../nets/vae.js';
import { ClipTokenizer } from '../text/clip-tokenizer.js';
import { defaultExecutionProvider } from '../onnx/provider.js';

/** Where the model store keeps the CLIP tokenizer files, once, for checkpoints that carry none. */
export const TOKENIZER_STORE = join('models', 'tokenizers');

export interface SdxlLoadOptions {
  /** Compiled models are kept here (e.g. $LIKENESS_HOME/cache/onnx). */
  cacheDir: string;
  /** 'cpu' (default, float32) or a GPU provider with dtype 'float16'. */
  executionProvider?: ExecutionProvider;
  /**
   * float32 (the default, and the only sensible choice on the CPU EP). float16 builds the text
   * encoders and the UNet in half precision for CUDA / TensorRT; the VAE stays float32 when its
   * config says force_upcast (SDXL's does: its decoder overflows in float16), as diffusers upcasts it.
   */
  dtype?: FloatDType;
  /** ONNX Runtime intra-op threads per session (default: ORT's choice). */
  threads?: number;
  /** A folder holding tokenizer/ and tokenizer_2/, used when the model has none (single-file checkpoints). */
  tokenizerDir?: string;
  /**
   * Single-file checkpoints: config values the tensor shapes cannot tell, per component (e.g.
   * { unet: { norm_num_groups: 4 } } for a model that is not SDXL-sized). See formats/single-file.ts.
   */
  overrides?: SingleFileOptions['overrides'];
}

export interface SdxlParts {
  tokenizer1: ClipTokenizer;
  tokenizer2: ClipTokenizer;
  encoder1: ClipTextEncoder;
  encoder2: ClipTextEncoder;
  unet: UnetRunner;
  vae: VaeDecoder;
  schedulerConfig: ModelConfig;
  /** unet config sample_size (latent side it was trained at; 128 for SDXL). */
  sampleSize: number;
  /** model_index.json's force_zeros_for_empty_prompt (diffusers' default, true, for single files). */
  forceZerosForEmptyPrompt: boolean;
  /** Which parts came from the compile cache. */
  cacheHits: Record<'text_encoder' | 'text_encoder_2' | 'unet', boolean>;
}

/**
 * SDXL base 1.0's scheduler/scheduler_config.json, whole: what a single-file checkpoint runs with.
 * Every key matters once the request switches scheduler (DDIM reads set_alpha_to_one and clip_sample,
 * PNDM skip_prk_steps), and diffusers' defaults for them differ from SDXL's.
 */
export const SDXL_BASE_SCHEDULER: ModelConfig = {
  _class_name: 'EulerDiscreteScheduler',
  _diffusers_version: '0.19.0.dev0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  interpolation_type: 'linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  sample_max_value: 1.0,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  trained_betas: null,
  use_karras_sigmas: false,
};

const WEIGHT_FILE = /\.(safetensors|bin|ckpt|pt|pth)$/;

/** A component's cache identity: the fingerprint of its weight files (or of the whole checkpoint, tagged). */
export async function componentHash(model: Pick<SdxlModel, 'path' | 'layout'>, name: ComponentName): Promise<string> {
  if (model.layout === 'single-file') return `${await fingerprintFiles([model.path])}#${name}`;
  const dir = join(model.path, name);
  const files = readdirSync(dir).filter((f) => WEIGHT_FILE.test(f) && statSync(join(dir, f)).isFile()).sort();
  return fingerprintFiles(files.map((f) => join(dir, f)));
}

async function componentHashes(model: SdxlModel): Promise<Record<ComponentName, string>> {
  const out = {} as Record<ComponentName, string>;
  for (const n of SDXL_COMPONENTS) out[n] = await componentHash(model, n);
  return out;
}

/** The model's own tokenizer folders, else the store's copy; a clear error when neither exists. */
export function loadTokenizers(model: Pick<SdxlModel, 'path' | 'layout' | 'tokenizer' | 'tokenizer_2'>, tokenizerDir?: string): { tokenizer1: ClipTokenizer; tokenizer2: ClipTokenizer } {
  if (model.tokenizer && model.tokenizer_2) {
    return { tokenizer1: ClipTokenizer.fromFolder(model.tokenizer), tokenizer2: ClipTokenizer.fromFolder(model.tokenizer_2) };
  }
  const what = model.layout === 'single-file'
    ? `${model.path} is a single-file checkpoint, which carries no CLIP tokenizer`
    : `${model.path} has no tokenizer/ and tokenizer_2/ folders`;
  const dirs = tokenizerDir ? [join(tokenizerDir, 'tokenizer'), join(tokenizerDir, 'tokenizer_2')] : [];
  const missing = dirs.filter((d) => !existsSync(join(d, 'vocab.json')) || !existsSync(join(d, 'merges.txt')));
  if (dirs.length === 0 || missing.length > 0) {
    const where = tokenizerDir ?? `$LIKENESS_HOME/${TOKENIZER_STORE}`;
    throw new EngineError('tokenizer_missing',
      `${what}: install the CLIP tokenizer files once in the model store — copy the tokenizer/ and tokenizer_2/ folders ` +
      `(vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json) of stabilityai/stable-diffusion-xl-base-1.0 into ${where}`);
  }
  return { tokenizer1: ClipTokenizer.fromFolder(dirs[0]!), tokenizer2: ClipTokenizer.fromFolder(dirs[1]!) };
}

/** model_index.json's force_zeros_for_empty_prompt; diffusers' default (true) when absent or for a single file. */
export function forceZerosFlag(model: Pick<SdxlModel, 'path' | 'layout'>): boolean {
  const index = join(model.path, 'model_index.json');
  if (model.layout !== 'diffusers' || !existsSync(index)) return true;
  const value = (parsePythonJson(readFileSync(index, 'utf8')) as Record<string, unknown>).force_zeros_for_empty_prompt;
  return typeof value === 'boolean' ? value : true;
}

/** Compiles (or finds in the cache) and opens every part; the model's files may be closed afterwards. */
export async function loadSdxlParts(model: SdxlModel, options: SdxlLoadOptions): Promise<SdxlParts> {
  const { tokenizer1, tokenizer2 } = loadTokenizers(model, options.tokenizerDir);
  const hashes = await componentHashes(model);
  const executionProvider = options.executionProvider ?? defaultExecutionProvider();
  const dtype = options.dtype ?? 'float32';
  const threads = options.threads !== undefined ? { intraOpThreads: options.threads } : {};
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    const encoder = async (name: 'text_encoder' | 'text_encoder_2', withProjection: boolean): Promise<ClipTextEncoder> => {
      const e = await loadClipTextEncoder(model[name].weights, model[name].config, {
        cacheDir: options.cacheDir, weightsHash: hashes[name], dtype, executionProvider, withProjection,
        outputs: withProjection ? ['penultimate', 'text_embeds'] : ['penultimate'], ...threads,
      });
      opened.push(e);
      return e;
    };
    const encoder1 = await encoder('text_encoder', false);
    const encoder2 = await encoder('text_encoder_2', true);
    const unet = await createUnetRunner(
      { config: model.unet.config, weights: float32Source(model.unet.weights), weightsHash: hashes.unet },
      { cacheDir: options.cacheDir, dtype, session: { executionProvider, ...threads } },
    );
    opened.push(unet);
    const vae = await loadVaeDecoder(model.vae, { cache: { dir: options.cacheDir, weightsHash: hashes.vae }, dtype, executionProvider, ...threads });
    opened.push(vae);
    return {
      tokenizer1, tokenizer2, encoder1, encoder2, unet, vae,
      schedulerConfig: model.scheduler ?? SDXL_BASE_SCHEDULER,
      forceZerosForEmptyPrompt: forceZerosFlag(model),
      sampleSize: typeof model.unet.config.sample_size === 'number' ? model.unet.config.sample_size : 128,
      cacheHits: { text_encoder: encoder1.cacheHit, text_encoder_2: encoder2.cacheHit, unet: unet.compiled.cacheHit },
    };
  } catch (err) {
    await Promise.all(opened.map((p) => p.dispose().catch(() => undefined)));
    throw err;
  }
}
