// AutoencoderKL's config (diffusers models/autoencoders/autoencoder_kl.py, v0.30.3): the keys of a
// vae/config.json with diffusers' own defaults for the ones left out.
import { EngineError } from '../errors.js';
import type { ModelConfig } from '../formats/keymaps/source.js';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  /** Channels per level, finest first; the latent is 2^(levels-1) times smaller than the image. */
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  normNumGroups: number;
  /** Latents are multiplied by this after encoding and divided by it before decoding (by the pipeline). */
  scalingFactor: number;
  shiftFactor: number | null;
  /** diffusers runs this VAE in float32 even when the rest of the pipeline is float16. */
  forceUpcast: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAddAttention: boolean;
}

/** Every ResnetBlock2D, GroupNorm and attention norm of the VAE uses this epsilon. */
export const VAE_NORM_EPS = 1e-6;

function num(raw: ModelConfig, key: string, fallback: number): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError('bad_config', `VAE config: ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function int(raw: ModelConfig, key: string, fallback: number): number {
  const v = num(raw, key, fallback);
  if (!Number.isInteger(v) || v < 1) throw new EngineError('bad_config', `VAE config: ${key} must be a positive integer, got ${v}`);
  return v;
}

function bool(raw: ModelConfig, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new EngineError('bad_config', `VAE config: ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function blockTypes(raw: ModelConfig, key: string, expected: string, levels: number): void {
  const v = raw[key];
  if (v === undefined) return;
  if (!Array.isArray(v) || v.length !== levels || !v.every((t) => t === expected)) {
    throw new EngineError('unsupported_model',
      `VAE config: ${key} ${JSON.stringify(v)} is not supported: Likeness builds AutoencoderKL with ${levels} ${expected} blocks`);
  }
}

/** Reads an AutoencoderKL config.json (or an inferred one); throws EngineError for what is not supported. */
export function parseVaeConfig(raw: ModelConfig): VaeConfig {
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'AutoencoderKL') {
    throw new EngineError('unsupported_model', `the VAE is a ${String(cls)}; Likeness runs AutoencoderKL`);
  }
  const boc = raw.block_out_channels ?? [64];
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every((c) => Number.isInteger(c) && c > 0)) {
    throw new EngineError('bad_config', `VAE config: block_out_channels must be a list of positive integers, got ${JSON.stringify(boc)}`);
  }
  const blockOutChannels = boc as number[];
  blockTypes(raw, 'down_block_types', 'DownEncoderBlock2D', blockOutChannels.length);
  blockTypes(raw, 'up_block_types', 'UpDecoderBlock2D', blockOutChannels.length);
  const act = raw.act_fn ?? 'silu';
  if (act !== 'silu') throw new EngineError('unsupported_model', `VAE config: act_fn ${JSON.stringify(act)} is not supported (only silu)`);
  const normNumGroups = int(raw, 'norm_num_groups', 32);
  for (const c of blockOutChannels) {
    if (c % normNumGroups !== 0) throw new EngineError('bad_config', `VAE config: ${c} channels do not split into ${normNumGroups} groups`);
  }
  const shift = raw.shift_factor;
  if (raw.latents_mean != null || raw.latents_std != null) {
    throw new EngineError('unsupported_model', 'VAE config: per-channel latents_mean / latents_std are not supported');
  }
  return {
    inChannels: int(raw, 'in_channels', 3),
    outChannels: int(raw, 'out_channels', 3),
    blockOutChannels,
    layersPerBlock: int(raw, 'layers_per_block', 1),
    latentChannels: int(raw, 'latent_channels', 4),
    normNumGroups,
    scalingFactor: num(raw, 'scaling_factor', 0.18215),
    shiftFactor: typeof shift === 'number' ? shift : null,
    forceUpcast: bool(raw, 'force_upcast', true),
    useQuantConv: bool(raw, 'use_quant_conv', true),
    usePostQuantConv: bool(raw, 'use_post_quant_conv', true),
    midBlockAddAttention: bool(raw, 'mid_block_add_attention', true),
  };
}

/** How many times smaller the latent is than the image. */
export function vaeScaleFactor(config: VaeConfig): number {
  return 2 ** (config.blockOutChannels.length - 1);
}
