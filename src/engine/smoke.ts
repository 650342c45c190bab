// The smoke model set: a tiny SDXL-architecture model with RANDOM weights, written in the diffusers
// layout (model_index.json, unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/,
// scheduler/), so that every path of the engine runs in seconds on a CPU without downloading
// anything. It draws noise, not pictures: it exists for tests, CI and a first run.
//
// Where the parameters come from: each net's config is parsed by the engine's own config readers,
// the diffusers / transformers state-dict shapes follow from it (nets/unet-shapes.ts,
// pipelines/state-shapes.ts), and then the
// engine's graph builders are run over a recording weight source. A builder that asks for a name the
// table lacks, or a table entry no builder reads, fails the write, so the set always holds exactly the
// parameters the nets consume. Values are drawn per tensor from torch's generator seeded by the set's
// seed and the tensor's name: the same seed writes byte-identical files.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.js';
import { toFloat16 } from './formats/dtype.js';
import { writeSafetensors, type TensorToWrite } from './formats/safetensors-write.js';
import type { WeightSource } from './formats/keymaps/source.js';
import { buildClipTextGraph } from './nets/clip-text.js';
import { buildUnetGraph } from './nets/unet.js';
import { parseUNetConfig } from './nets/unet-config.js';
import { buildVaeDecoder, buildVaeEncoder } from './nets/vae.js';
import { parseVaeConfig } from './nets/vae-config.js';
import { TorchGenerator } from './rng/torch-cpu.js';
import { unetWeightShapes } from './nets/unet-shapes.js';
import { clipStateShapes, vaeStateShapes, type StateShapes } from './pipelines/state-shapes.js';
import { SDXL_BASE_SCHEDULER } from './pipelines/sdxl-components.js';

/** Where the smoke set lives under $LIKENESS_HOME. */
export const SMOKE_MODEL_DIR = join('models', 'smoke');

/** The four nets' config.json dicts; the text encoders' vocab_size is set to the tiny tokenizer's. */
export interface RandomSdxlConfigs {
  unet: Record<string, unknown>;
  vae: Record<string, unknown>;
  text_encoder: Record<string, unknown>;
  text_encoder_2: Record<string, unknown>;
}

type Component = keyof RandomSdxlConfigs;

/** Channels and depths of the smoke set: SDXL's block structure at toy width. */
export const SMOKE_CONFIG = {
  unet: {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: '0.30.3',
    sample_size: 8,
    in_channels: 4,
    out_channels: 4,
    flip_sin_to_cos: true,
    freq_shift: 0,
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    block_out_channels: [16, 32, 64],
    layers_per_block: 2,
    transformer_layers_per_block: [1, 1, 2],
    attention_head_dim: [1, 2, 4],
    cross_attention_dim: 64,
    norm_num_groups: 8,
    norm_eps: 1e-5,
    act_fn: 'silu',
    downsample_padding: 1,
    mid_block_scale_factor: 1,
    use_linear_projection: true,
    addition_embed_type: 'text_time',
    addition_time_embed_dim: 8,
    projection_class_embeddings_input_dim: 80, // pooled 32 + 6 time ids × 8
    upcast_attention: false,
  },
  vae: {
    _class_name: 'AutoencoderKL',
    _diffusers_version: '0.30.3',
    in_channels: 3,
    out_channels: 3,
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
    block_out_channels: [8, 16, 16, 16],
    layers_per_block: 1,
    act_fn: 'silu',
    latent_channels: 4,
    norm_num_groups: 4,
    sample_size: 64,
    scaling_factor: 0.13025,
    force_upcast: true,
  },
  text_encoder: {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    projection_dim: 32,
    bos_token_id: 0,
    eos_token_id: 2, // as SDXL's configs: the legacy value, which pools at the largest id (our eos)
    pad_token_id: 1,
  },
  text_encoder_2: {
    architectures: ['CLIPTextModelWithProjection'],
    model_type: 'clip_text_model',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    max_position_embeddings: 77,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-5,
    projection_dim: 32,
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  },
} as const;

/** SDXL base 1.0's scheduler/scheduler_config.json (the smoke set ships the same). */
export const SDXL_SCHEDULER_CONFIG = SDXL_BASE_SCHEDULER;

/** Words the tiny tokenizer merges whole (everything else falls apart into byte symbols, still valid ids). */
const SMOKE_WORDS = [
  'a', 'an', 'the', 'of', 'in', 'with', 'and', 'photo', 'portrait', 'person', 'woman', 'man', 'face', 'smiling',
  'cat', 'dog', 'red', 'blue', 'light', 'studio', 'watercolor', 'painting', 'lowres', 'low', 'quality', 'worst',
  'text', 'watermark', 'frame', 'blurry',
];

export const SMOKE_README = `# Likeness smoke model set

This folder holds a tiny SDXL-architecture model with RANDOM weights (written by \`likeness models smoke\`).
It exists so that tests, CI and a first run exercise every part of the engine in seconds on a CPU.
It draws noise, not pictures. Install real SDXL weights (a diffusers folder or a single-file
.safetensors checkpoint) to make images.
`;

/** GPT-2's bytes_to_unicode: every byte as a printable character (the alphabet CLIP's BPE works in). */
function byteAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Map<number, number>(printable.map((b) => [b, b]));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!chars.has(b)) chars.set(b, 256 + extra++);
  return [...printable, ...[...chars.keys()].filter((b) => !printable.includes(b))].map((b) => String.fromCodePoint(chars.get(b)!));
}

/** A CLIP-style vocabulary: byte symbols, byte symbols ending a word, merges of SMOKE_WORDS, bos, eos. */
export function smokeTokenizerFiles(): { vocab: Record<string, number>; merges: string } {
  const symbols = byteAlphabet();
  const tokens = [...symbols, ...symbols.map((s) => `${s}</w>`)];
  const merges: string[] = [];
  const known = new Set(tokens);
  for (const word of SMOKE_WORDS) {
    const parts = [...word];
    let left = parts[0]!;
    for (let i = 1; i < parts.length; i++) {
      const right = i === parts.length - 1 ? `${parts[i]}</w>` : parts[i]!;
      const merged = left + right;
      if (!known.has(merged)) {
        merges.push(`${left} ${right}`);
        tokens.push(merged);
        known.add(merged);
      }
      left = merged;
    }
  }
  tokens.push('<|startoftext|>', '<|endoftext|>');
  return { vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), merges: `#version: 0.2\n${merges.join('\n')}\n` };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Seeded values that keep activations near unit scale: norms ≈ 1, biases ≈ 0, matrices ~ N(0, 1/fan_in). */
function randomTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const noise = new TorchGenerator(BigInt(fnv1a(name) ^ seed) & 0xffffffffn).randn(shape);
  const isVector = shape.length === 1;
  const isNorm = isVector && name.endsWith('.weight');
  const isTable = /embedding\.weight$/.test(name);
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const scale = isNorm ? 0.05 : isVector ? 0.02 : isTable ? 0.5 : 1 / Math.sqrt(fanIn);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.fround((isNorm ? 1 : 0) + noise[i]! * scale);
  return noise;
}

/**
 * randomTensor's scales from a fast seeded normal generator (xorshift32 + Box–Muller), for the
 * rehearsal sets' billions of values. Deterministic for (name, seed).
 */
export function fastRandomTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let x = (fnv1a(name) ^ seed ^ 0x9e3779b9) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return (x + 0.5) / 4294967296;
  };
  const isVector = shape.length === 1;
  const isNorm = isVector && name.endsWith('.weight');
  const isTable = /embedding\.weight$/.test(name);
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const scale = isNorm ? 0.05 : isVector ? 0.02 : isTable ? 0.5 : name.endsWith('latents') ? 1 : 1 / Math.sqrt(fanIn);
  const base = isNorm ? 1 : 0;
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = base + r * Math.cos(t) * scale;
    if (i + 1 < n) out[i + 1] = base + r * Math.sin(t) * scale;
  }
  return out;
}

/**
 * Runs `build` over a weight source that serves `shapes` and records what the builder reads;
 * throws unless the builder read every entry and asked for nothing else.
 */
export function checkAgainstBuilder(what: string, shapes: StateShapes, build: (source: WeightSource & { read(name: string): Float32Array }) => void): void {
  const read = new Set<string>();
  const info = (name: string): { dtype: 'F32'; shape: number[] } => {
    const shape = shapes.get(name);
    if (!shape) throw new EngineError('smoke_model', `the ${what} builder asks for ${name}, which the smoke state dict lacks`);
    read.add(name);
    return { dtype: 'F32', shape: [...shape] };
  };
  const never = (name: string): Float32Array => {
    throw new EngineError('smoke_model', `the ${what} builder read ${name} while building`);
  };
  build({ names: () => [...shapes.keys()], has: (name) => shapes.has(name), info, readFloat32: never, read: never });
  const unread = [...shapes.keys()].filter((n) => !read.has(n));
  if (unread.length > 0) throw new EngineError('smoke_model', `the ${what} builder never reads ${unread.slice(0, 5).join(', ')}`);
}

/** The configs as written: the text encoders get the tiny tokenizer's vocabulary size. */
function withVocab(configs: RandomSdxlConfigs): RandomSdxlConfigs {
  const vocabSize = Object.keys(smokeTokenizerFiles().vocab).length;
  return {
    ...configs,
    // a config that names its vocabulary (the rehearsal sets: CLIP's 49408) keeps it; the tiny
    // tokenizer's ids fit in it
    text_encoder: { vocab_size: vocabSize, ...configs.text_encoder },
    text_encoder_2: { vocab_size: vocabSize, ...configs.text_encoder_2 },
  };
}

/** The four nets' parameter tables for `configs` (default: the smoke set's), each checked against its builder. */
export function smokeStateShapes(configs: RandomSdxlConfigs = SMOKE_CONFIG): Record<Component, StateShapes> {
  const { unet, vae, text_encoder: te1, text_encoder_2: te2 } = withVocab(configs);
  const unetConfig = parseUNetConfig(unet);
  const vaeConfig = parseVaeConfig(vae);
  const shapes = {
    unet: unetWeightShapes(unetConfig),
    vae: vaeStateShapes(vaeConfig),
    text_encoder: clipStateShapes(te1, false),
    text_encoder_2: clipStateShapes(te2, true),
  };
  checkAgainstBuilder('UNet', shapes.unet, (w) => buildUnetGraph(w, unetConfig));
  checkAgainstBuilder('VAE', shapes.vae, (w) => { buildVaeDecoder(w, vaeConfig); buildVaeEncoder(w, vaeConfig); });
  const allOutputs = ['penultimate', 'last_hidden_state', 'pooled'] as const;
  checkAgainstBuilder('CLIP text', shapes.text_encoder, (w) => buildClipTextGraph(te1, w, { outputs: allOutputs, withProjection: false }));
  checkAgainstBuilder('CLIP text (projection)', shapes.text_encoder_2, (w) =>
    buildClipTextGraph(te2, w, { outputs: [...allOutputs, 'text_embeds'], withProjection: true }));
  return shapes;
}

export interface SmokeModelOptions {
  /** Seeds every tensor; the same seed writes identical files. Default 0. */
  seed?: number;
  /**
   * Rehearsal sets: F16 storage (as users' checkpoints) and a fast seeded generator (xorshift +
   * Box–Muller; torch's bit-exact randn is only needed for the toy set's goldens-style files).
   */
  rehearsal?: boolean;
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** Writes the smoke model set into `dir` (replacing what is there) and returns `dir`. */
export function writeSmokeModel(dir: string, options: SmokeModelOptions = {}): Promise<string> {
  return writeRandomSdxlModel(dir, SMOKE_CONFIG, options);
}

/**
 * Writes a random-weight SDXL-architecture model of any size (configs as diffusers / transformers
 * config.json dicts) in the diffusers layout, with the smoke set's tokenizer and scheduler.
 */
export async function writeRandomSdxlModel(dir: string, configs: RandomSdxlConfigs, options: SmokeModelOptions = {}): Promise<string> {
  const seed = (options.seed ?? 0) >>> 0;
  const shapes = smokeStateShapes(configs);
  const written = withVocab(configs);
  const tokenizer = smokeTokenizerFiles();
  await rm(dir, { recursive: true, force: true });
  const files: Record<Component, string> = {
    unet: 'diffusion_pytorch_model.safetensors',
    vae: 'diffusion_pytorch_model.safetensors',
    text_encoder: 'model.safetensors',
    text_encoder_2: 'model.safetensors',
  };
  for (const [name, file] of Object.entries(files) as [Component, string][]) {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(join(dir, name, 'config.json'), json(written[name]));
    const tensors: [string, TensorToWrite][] = [...shapes[name]].map(([tensor, shape]) => [tensor, options.rehearsal
      ? { dtype: 'F16', shape, data: () => toFloat16(fastRandomTensor(`${name}/${tensor}`, shape, seed)) }
      : { dtype: 'F32', shape, data: () => randomTensor(`${name}/${tensor}`, shape, seed) }]);
    await writeSafetensors(join(dir, name, file), tensors, { format: 'pt', likeness: 'random weights' });
  }
  const specials = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' };
  for (const [folder, pad] of [['tokenizer', '<|endoftext|>'], ['tokenizer_2', '!']] as const) {
    await mkdir(join(dir, folder), { recursive: true });
    await writeFile(join(dir, folder, 'vocab.json'), json(tokenizer.vocab));
    await writeFile(join(dir, folder, 'merges.txt'), tokenizer.merges);
    await writeFile(join(dir, folder, 'special_tokens_map.json'), json({ ...specials, pad_token: pad }));
    await writeFile(join(dir, folder, 'tokenizer_config.json'),
      json({ tokenizer_class: 'CLIPTokenizer', model_max_length: 77, do_lower_case: true, errors: 'replace', ...specials, pad_token: pad }));
  }
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await writeFile(join(dir, 'scheduler', 'scheduler_config.json'), json(SDXL_SCHEDULER_CONFIG));
  await writeFile(join(dir, 'model_index.json'), json({
    _class_name: 'StableDiffusionXLPipeline',
    _diffusers_version: '0.30.3',
    force_zeros_for_empty_prompt: true,
    feature_extractor: [null, null],
    image_encoder: [null, null],
    scheduler: ['diffusers', 'EulerDiscreteScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    tokenizer_2: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  }));
  await writeFile(join(dir, 'README.md'), SMOKE_README);
  return dir;
}
