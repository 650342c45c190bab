// A diffusers UNet2DConditionModel / ControlNetModel config.json, normalised the way their
// __init__ reads it: per-block lists for every per-block option, the legacy `attention_head_dim`
// (= number of heads when `num_attention_heads` is unset), transformer depths per resnet layer, and
// the reversed lists the up blocks use. Options that change the maths in ways these graphs do not
// implement are refused with a clear error rather than silently ignored.
import { EngineError } from '../errors.js';

export type DownBlockType = 'DownBlock2D' | 'CrossAttnDownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';
export type MidBlockType = 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D' | null;

export interface DownBlockConfig {
  type: DownBlockType;
  channels: number;
  layers: number;
  /** Transformer blocks per resnet layer (cross-attention blocks only). */
  transformerDepth: number[];
  heads: number;
  crossAttentionDim: number;
  addDownsample: boolean;
}

export interface UpBlockConfig {
  type: UpBlockType;
  channels: number;
  /** layers_per_block + 1 (the extra resnet takes the skip from the previous level). */
  layers: number;
  transformerDepth: number[];
  heads: number;
  crossAttentionDim: number;
  addUpsample: boolean;
}

export interface MidBlockConfig {
  type: Exclude<MidBlockType, null>;
  transformerDepth: number;
  heads: number;
  crossAttentionDim: number;
  scaleFactor: number;
}

/** The time and added (text_time) embeddings, shared by the UNet and the ControlNet. */
export interface EmbeddingConfig {
  /** Sinusoidal width of the timestep (block_out_channels[0]). */
  timeProjDim: number;
  /** time_embed_dim = time_embedding_dim ?? block_out_channels[0]·4. */
  timeEmbedDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  /** addition_embed_type 'text_time': sinusoids of the 6 time ids + pooled text → add_embedding. */
  textTime: { timeIdDim: number; projectionInputDim: number } | null;
}

export interface UNetCoreConfig {
  inChannels: number;
  blockOutChannels: number[];
  normGroups: number;
  normEps: number;
  convInKernel: number;
  downsamplePadding: number;
  useLinearProjection: boolean;
  embedding: EmbeddingConfig;
  down: DownBlockConfig[];
  mid: MidBlockConfig | null;
}

export interface UNetConfig extends UNetCoreConfig {
  outChannels: number;
  convOutKernel: number;
  centerInputSample: boolean;
  up: UpBlockConfig[];
}

export interface ControlNetConfig extends UNetCoreConfig {
  conditioningChannels: number;
  conditioningEmbeddingChannels: number[];
  /** 'bgr' flips the conditioning image's channels first. */
  bgr: boolean;
  globalPoolConditions: boolean;
}

type Json = Record<string, unknown>;

function fail(kind: string, why: string): never {
  throw new EngineError('unsupported_model', `this ${kind} config is not supported: ${why}`);
}

function int(cfg: Json, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new EngineError('bad_model_config', `config ${key} must be an integer, got ${JSON.stringify(v)}`);
  return v;
}

function num(cfg: Json, key: string, fallback: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number') throw new EngineError('bad_model_config', `config ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(cfg: Json, key: string, fallback: boolean): boolean {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'boolean') throw new EngineError('bad_model_config', `config ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** An int or a list of n ints (a Python tuple arrives as a list). */
function perBlock(cfg: Json, key: string, n: number, fallback?: unknown): number[] {
  const v = cfg[key] ?? fallback;
  if (typeof v === 'number') return new Array<number>(n).fill(v);
  if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number')) return v as number[];
  throw new EngineError('bad_model_config', `config ${key} must be an int or a list of ${n}, got ${JSON.stringify(v)}`);
}

/** transformer_layers_per_block: int, per-block ints, or per-block per-layer lists. */
function depths(v: unknown, blocks: number, layers: readonly number[], key: string): number[][] {
  const entry = (e: unknown, i: number): number[] => {
    if (typeof e === 'number') return new Array<number>(layers[i]!).fill(e);
    if (Array.isArray(e) && e.length === layers[i] && e.every((x) => typeof x === 'number')) return e as number[];
    throw new EngineError('bad_model_config', `config ${key}[${i}] must be an int or a list of ${layers[i]}, got ${JSON.stringify(e)}`);
  };
  if (typeof v === 'number') return layers.map((_, i) => entry(v, i));
  if (Array.isArray(v) && v.length === blocks) return v.map(entry);
  throw new EngineError('bad_model_config', `config ${key} must be an int or a list of ${blocks}, got ${JSON.stringify(v)}`);
}

function refuseUnless(kind: string, cfg: Json, key: string, allowed: readonly unknown[]): void {
  const v = cfg[key] ?? null;
  if (!allowed.includes(v as never)) fail(kind, `${key} = ${JSON.stringify(v)} (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
}

function parseCore(cfg: Json, kind: string): UNetCoreConfig & { heads: number[]; cross: number[]; layers: number[]; depth: number[][] } {
  refuseUnless(kind, cfg, 'class_embed_type', [null]);
  refuseUnless(kind, cfg, 'addition_embed_type', [null, 'text_time']);
  refuseUnless(kind, cfg, 'encoder_hid_dim_type', [null]);
  refuseUnless(kind, cfg, 'resnet_time_scale_shift', [null, 'default']);
  refuseUnless(kind, cfg, 'time_embedding_type', [null, 'positional']);
  refuseUnless(kind, cfg, 'time_cond_proj_dim', [null]);
  refuseUnless(kind, cfg, 'time_embedding_act_fn', [null]);
  refuseUnless(kind, cfg, 'timestep_post_act', [null]);
  refuseUnless(kind, cfg, 'act_fn', [null, 'silu']);
  refuseUnless(kind, cfg, 'attention_type', [null, 'default']);
  refuseUnless(kind, cfg, 'dual_cross_attention', [null, false]);
  refuseUnless(kind, cfg, 'only_cross_attention', [null, false]);
  refuseUnless(kind, cfg, 'resnet_skip_time_act', [null, false]);
  refuseUnless(kind, cfg, 'cross_attention_norm', [null]);
  refuseUnless(kind, cfg, 'class_embeddings_concat', [null, false]);

  const boc = cfg.block_out_channels;
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every((c) => typeof c === 'number')) {
    throw new EngineError('bad_model_config', `config block_out_channels must be a list of ints, got ${JSON.stringify(boc)}`);
  }
  const blockOutChannels = boc as number[];
  const n = blockOutChannels.length;
  const downTypes = cfg.down_block_types;
  if (!Array.isArray(downTypes) || downTypes.length !== n) throw new EngineError('bad_model_config', `config down_block_types must list ${n} blocks`);
  for (const t of downTypes) if (t !== 'DownBlock2D' && t !== 'CrossAttnDownBlock2D') fail(kind, `down block ${JSON.stringify(t)}`);
  const layers = perBlock(cfg, 'layers_per_block', n, 2);
  const headsRaw = cfg.num_attention_heads ?? cfg.attention_head_dim ?? 8; // legacy naming: attention_head_dim = heads
  const heads = perBlock({ h: headsRaw }, 'h', n);
  const cross = perBlock(cfg, 'cross_attention_dim', n, 1280);
  const depth = depths(cfg.transformer_layers_per_block ?? 1, n, layers, 'transformer_layers_per_block');
  const timeProjDim = blockOutChannels[0]!;
  const textTime = (cfg.addition_embed_type ?? null) === 'text_time'
    ? { timeIdDim: int(cfg, 'addition_time_embed_dim'), projectionInputDim: int(cfg, 'projection_class_embeddings_input_dim') }
    : null;
  const midType = (cfg.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : cfg.mid_block_type) as MidBlockType;
  if (midType !== null && midType !== 'UNetMidBlock2DCrossAttn' && midType !== 'UNetMidBlock2D') fail(kind, `mid block ${JSON.stringify(midType)}`);
  return {
    inChannels: int(cfg, 'in_channels', 4),
    blockOutChannels,
    normGroups: int(cfg, 'norm_num_groups', 32),
    normEps: num(cfg, 'norm_eps', 1e-5),
    convInKernel: int(cfg, 'conv_in_kernel', 3),
    downsamplePadding: int(cfg, 'downsample_padding', 1),
    useLinearProjection: bool(cfg, 'use_linear_projection', false),
    embedding: {
      timeProjDim,
      timeEmbedDim: cfg.time_embedding_dim == null ? timeProjDim * 4 : int(cfg, 'time_embedding_dim'),
      flipSinToCos: bool(cfg, 'flip_sin_to_cos', true),
      freqShift: num(cfg, 'freq_shift', 0),
      textTime,
    },
    down: (downTypes as DownBlockType[]).map((type, i) => ({
      type,
      channels: blockOutChannels[i]!,
      layers: layers[i]!,
      transformerDepth: depth[i]!,
      heads: heads[i]!,
      crossAttentionDim: cross[i]!,
      addDownsample: i < n - 1,
    })),
    mid: midType === null ? null : {
      type: midType,
      transformerDepth: depth[n - 1]![0]!, // transformer_layers_per_block[-1], its first entry if per-layer
      heads: heads[n - 1]!,
      crossAttentionDim: cross[n - 1]!,
      scaleFactor: num(cfg, 'mid_block_scale_factor', 1),
    },
    heads, cross, layers, depth,
  };
}

function strip<T extends object>(core: T & { heads: unknown; cross: unknown; layers: unknown; depth: unknown }): T {
  const { heads: _h, cross: _c, layers: _l, depth: _d, ...rest } = core;
  return rest as unknown as T;
}

/** Normalises a UNet2DConditionModel config.json. */
export function parseUNetConfig(raw: unknown): UNetConfig {
  const cfg = (raw ?? {}) as Json;
  const core = parseCore(cfg, 'UNet');
  // resnet_out_scale_factor and mid_block_only_cross_attention only reach the Simple*/Resnet* block kinds, refused above.
  const n = core.blockOutChannels.length;
  const upTypes = cfg.up_block_types;
  if (!Array.isArray(upTypes) || upTypes.length !== n) throw new EngineError('bad_model_config', `config up_block_types must list ${n} blocks`);
  for (const t of upTypes) if (t !== 'UpBlock2D' && t !== 'CrossAttnUpBlock2D') fail('UNet', `up block ${JSON.stringify(t)}`);
  const revChannels = [...core.blockOutChannels].reverse();
  const revLayers = [...core.layers].reverse();
  const revHeads = [...core.heads].reverse();
  const revCross = [...core.cross].reverse();
  const upLayers = revLayers.map((l) => l + 1);
  const tl = cfg.transformer_layers_per_block ?? 1;
  if (Array.isArray(tl) && tl.some((e) => Array.isArray(e)) && cfg.reverse_transformer_layers_per_block == null) {
    fail('UNet', "per-layer transformer_layers_per_block needs reverse_transformer_layers_per_block (an asymmetrical UNet)");
  }
  const revDepthRaw = cfg.reverse_transformer_layers_per_block ?? (Array.isArray(tl) ? [...tl].reverse() : tl);
  const revDepth = depths(revDepthRaw, n, upLayers, 'reverse_transformer_layers_per_block');
  return {
    ...strip(core),
    outChannels: int(cfg, 'out_channels', 4),
    convOutKernel: int(cfg, 'conv_out_kernel', 3),
    centerInputSample: bool(cfg, 'center_input_sample', false),
    up: (upTypes as UpBlockType[]).map((type, i) => ({
      type,
      channels: revChannels[i]!,
      layers: upLayers[i]!,
      transformerDepth: revDepth[i]!,
      heads: revHeads[i]!,
      crossAttentionDim: revCross[i]!,
      addUpsample: i < n - 1,
    })),
  };
}

/** Normalises a ControlNetModel config.json. */
export function parseControlNetConfig(raw: unknown): ControlNetConfig {
  const cfg = (raw ?? {}) as Json;
  const core = parseCore(cfg, 'ControlNet');
  const order = cfg.controlnet_conditioning_channel_order ?? 'rgb';
  if (order !== 'rgb' && order !== 'bgr') fail('ControlNet', `controlnet_conditioning_channel_order ${JSON.stringify(order)}`);
  const emb = cfg.conditioning_embedding_out_channels ?? [16, 32, 96, 256];
  if (!Array.isArray(emb) || emb.length === 0 || !emb.every((c) => typeof c === 'number')) {
    throw new EngineError('bad_model_config', `config conditioning_embedding_out_channels must be a list of ints, got ${JSON.stringify(emb)}`);
  }
  return {
    ...strip(core),
    conditioningChannels: int(cfg, 'conditioning_channels', 3),
    conditioningEmbeddingChannels: emb as number[],
    bgr: order === 'bgr',
    globalPoolConditions: bool(cfg, 'global_pool_conditions', false),
  };
}

/**
 * The attn2 modules in unet.attn_processors order (down blocks, then up blocks, then the mid block:
 * the order UNet2DConditionModel registers them). IP-Adapter checkpoints number the processors in
 * this order with attn1 taking the even slots, so the n-th attn2 is `ip_adapter.{2n+1}`.
 */
export function attn2Modules(cfg: UNetConfig): string[] {
  const out: string[] = [];
  const walk = (block: string, attentions: number, depthOf: (i: number) => number): void => {
    for (let i = 0; i < attentions; i++) {
      for (let j = 0; j < depthOf(i); j++) out.push(`${block}.attentions.${i}.transformer_blocks.${j}.attn2`);
    }
  };
  cfg.down.forEach((b, i) => { if (b.type === 'CrossAttnDownBlock2D') walk(`down_blocks.${i}`, b.layers, (l) => b.transformerDepth[l]!); });
  cfg.up.forEach((b, i) => { if (b.type === 'CrossAttnUpBlock2D') walk(`up_blocks.${i}`, b.layers, (l) => b.transformerDepth[l]!); });
  if (cfg.mid?.type === 'UNetMidBlock2DCrossAttn') walk('mid_block', 1, () => cfg.mid!.transformerDepth);
  return out;
}
