// The SDXL UNet (diffusers UNet2DConditionModel) as one graph, top to bottom in the order the data
// flows: time and text_time embeddings → conv_in → down blocks → mid block → up blocks → conv_out.
// Optional parts, each a build option: ControlNet residual inputs (added to the skips and to the
// mid output where diffusers adds them), and InstantID's IP-Adapter (decoupled cross-attention on
// every attn2 over the last `numTokens` context tokens, with a runtime scale and an optional
// face-region mask). Every size comes from the config and the weights.
import { GraphBuilder, type AttentionMode, type BuilderOptions, type ModelDef, type Tensor } from '../onnx/index.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { IpAdapterContext } from './sdxl-attention.js';
import { conditioningEmbedding, convSame } from './sdxl-blocks.js';
import { WeightScope, type TensorSource } from './sdxl-weights.js';
import { encoder, upBlock, type BlockEnv } from './unet-blocks.js';
import { attn2Modules, type UNetConfig } from './unet-config.js';

export interface IpAdapterOptions {
  /** Holds `{k}.to_k_ip.weight` / `{k}.to_v_ip.weight` (ip-adapter.bin's `ip_adapter.` group, prefix removed). */
  weights: TensorSource;
  /** Image tokens at the end of encoder_hidden_states (16 for InstantID). */
  numTokens: number;
  /** Adds the `region_mask` input [Bm, 1, Hm, Wm] (image pixels) that gates the IP branch. */
  regionMask?: boolean;
}

export interface UnetGraphOptions {
  dtype?: FloatDType;
  /** How attention is written (GraphBuilder's option); 'plain' unless asked. */
  attention?: AttentionMode;
  /** Adds down_block_additional_residual_0..N-1 and mid_block_additional_residual inputs. */
  controlResiduals?: boolean;
  ipAdapter?: IpAdapterOptions;
  /** Fix dims instead of the symbolic B, H, W, S (a static graph can be a little faster). */
  staticDims?: { batch?: number; height?: number; width?: number; sequence?: number };
  /**
   * Every Linear of the UNet itself gets a run-time LoRA branch (engine/lora/runtime.ts): factor
   * inputs per weight, rank 0 when unused. IP-Adapter and joined ControlNet weights get none.
   */
  loraSlots?: boolean;
}

/** The UNet's Linears that take a LoRA branch with loraSlots (LoRAs never patch IP-Adapter or ControlNet weights). */
export function unetLoraSlot(weight: string): boolean {
  return !weight.startsWith('ip_adapter.') && !/^controlnet_\d+\./.test(weight);
}

/** GraphBuilder options for a UNet graph (or a graph with a UNet inside). */
export function unetBuilderOptions(name: string, options: UnetGraphOptions): BuilderOptions {
  return {
    name, dtype: options.dtype ?? 'float32', keepIoFloat32: true, attention: options.attention ?? 'plain',
    ...(options.loraSlots ? { loraSlots: unetLoraSlot } : {}),
  };
}

/** Graph input and output names (the goldens' and diffusers' argument names). */
export const UNET_IO = {
  sample: 'sample',
  timestep: 'timestep',
  context: 'encoder_hidden_states',
  textEmbeds: 'text_embeds',
  timeIds: 'time_ids',
  downResidual: (i: number) => `down_block_additional_residual_${i}`,
  midResidual: 'mid_block_additional_residual',
  ipScale: 'ip_adapter_scale',
  regionMask: 'region_mask',
  output: 'noise_pred',
} as const;

/** The UNet's graph tensors, for building it alone or inside a larger graph (UNet + ControlNets). */
export interface UnetInputs {
  sample: Tensor; // [B, in, H, W]
  timestep: Tensor; // [T], T = 1 or B
  context: Tensor; // [B, S, Cc] (text tokens, then numTokens image tokens with an IP-Adapter)
  textEmbeds?: Tensor; // [B, pooled]
  timeIds?: Tensor; // [B, 6]
  downResiduals?: readonly Tensor[];
  midResidual?: Tensor;
  ip?: { weights: TensorSource; numTokens: number; scale: Tensor; regionMask?: Tensor };
}

/** The IP-Adapter weight lookup: attn2 path → ip_adapter index 2n+1 (see attn2Modules). */
function ipWeights(g: GraphBuilder, cfg: UNetConfig, source: TensorSource): IpAdapterContext['weights'] {
  const index = new Map(attn2Modules(cfg).map((path, n) => [path, 2 * n + 1]));
  const scope = new WeightScope(g, source, '', 'ip_adapter.');
  return (path) => {
    const k = index.get(path);
    if (k === undefined) throw new Error(`no IP-Adapter slot for ${path}`);
    return { k: scope.get(`${k}.to_k_ip.weight`), v: scope.get(`${k}.to_v_ip.weight`) };
  };
}

/** UNet2DConditionModel.forward → noise prediction [B, out, H, W]. */
export function unetForward(g: GraphBuilder, w: WeightScope, cfg: UNetConfig, x: UnetInputs): Tensor {
  const sample = cfg.centerInputSample ? g.sub(g.mul(x.sample, 2), 1) : x.sample;
  const temb = conditioningEmbedding(g, w, cfg.embedding, x); // SiLU(emb) [T or B, E]

  // Text tokens for attn2; with an IP-Adapter the last numTokens are the image prompt tokens.
  let text = x.context;
  let ip: IpAdapterContext | undefined;
  if (x.ip) {
    const n = x.ip.numTokens;
    text = g.slice(x.context, [0], [-n], [1]); // [B, S − n, Cc]
    const tokens = g.slice(x.context, [-n], [Number.MAX_SAFE_INTEGER], [1]); // [B, n, Cc]
    ip = { tokens, scale: x.ip.scale, weights: ipWeights(g, cfg, x.ip.weights), ...(x.ip.regionMask ? { regionMask: x.ip.regionMask } : {}) };
  }
  const env: BlockEnv = {
    g, temb, ctx: { text, ...(ip ? { ip } : {}) }, groups: cfg.normGroups, eps: cfg.normEps, useLinearProjection: cfg.useLinearProjection,
  };

  let { mid: h, skips } = encoder(env, w, sample, cfg);
  if (x.downResiduals) {
    if (x.downResiduals.length !== skips.length) throw new Error(`the UNet has ${skips.length} skips, got ${x.downResiduals.length} ControlNet residuals`);
    skips = skips.map((s, i) => g.add(s, x.downResiduals![i]!));
  }
  if (x.midResidual) h = g.add(h, x.midResidual);

  cfg.up.forEach((b, i) => {
    const mine = skips.splice(skips.length - b.layers, b.layers);
    h = upBlock(env, w.at(`up_blocks.${i}`), h, mine, b, skips[skips.length - 1]);
  });

  return g.scope('conv_out', () => {
    const normed = g.silu(g.groupNorm(h, w.get('conv_norm_out.weight'), w.get('conv_norm_out.bias'), { groups: cfg.normGroups, eps: cfg.normEps }));
    return convSame(g, w, 'conv_out', normed); // [B, out, H, W]
  });
}

/** The residual shapes a ControlNet must supply: [channels, downscale] per skip, then the mid. */
export function unetResidualLayout(cfg: UNetConfig): { down: { channels: number; scale: number }[]; mid: { channels: number; scale: number } } {
  const down = [{ channels: cfg.blockOutChannels[0]!, scale: 1 }];
  let scale = 1;
  for (const b of cfg.down) {
    for (let i = 0; i < b.layers; i++) down.push({ channels: b.channels, scale });
    if (b.addDownsample) { scale *= 2; down.push({ channels: b.channels, scale }); }
  }
  return { down, mid: { channels: cfg.blockOutChannels[cfg.blockOutChannels.length - 1]!, scale } };
}

/** Declares the UNet's inputs on `g` (names in UNET_IO) and returns them as UnetInputs. */
export function declareUnetInputs(g: GraphBuilder, cfg: UNetConfig, options: UnetGraphOptions = {}, ipWeightsSource?: TensorSource): UnetInputs {
  const s = options.staticDims ?? {};
  const B = s.batch ?? 'B';
  const H = s.height ?? 'H';
  const W = s.width ?? 'W';
  const cross = cfg.down.find((b) => b.type === 'CrossAttnDownBlock2D')?.crossAttentionDim ?? cfg.mid?.crossAttentionDim ?? cfg.up[0]!.crossAttentionDim;
  const x: UnetInputs = {
    sample: g.input(UNET_IO.sample, [B, cfg.inChannels, H, W]),
    timestep: g.input(UNET_IO.timestep, ['T'], 'float32'),
    context: g.input(UNET_IO.context, [B, s.sequence ?? 'S', cross]),
  };
  if (cfg.embedding.textTime) {
    x.textEmbeds = g.input(UNET_IO.textEmbeds, [B, 'P']);
    x.timeIds = g.input(UNET_IO.timeIds, [B, 'N'], 'float32'); // sinusoids of pixel sizes need float32
  }
  if (options.controlResiduals) {
    const layout = unetResidualLayout(cfg);
    const dim = (d: number | string, k: number): number | string => (typeof d === 'number' ? Math.ceil(d / k) : `${d}/${k}`);
    x.downResiduals = layout.down.map((r, i) => g.input(UNET_IO.downResidual(i), [B, r.channels, dim(H, r.scale), dim(W, r.scale)]));
    x.midResidual = g.input(UNET_IO.midResidual, [B, layout.mid.channels, dim(H, layout.mid.scale), dim(W, layout.mid.scale)]);
  }
  if (options.ipAdapter) {
    const ip = options.ipAdapter;
    x.ip = {
      weights: ipWeightsSource ?? ip.weights,
      numTokens: ip.numTokens,
      scale: g.input(UNET_IO.ipScale, [1]),
      ...(ip.regionMask ? { regionMask: g.input(UNET_IO.regionMask, ['Bm', 1, 'MH', 'MW']) } : {}),
    };
  }
  return x;
}

/** The whole UNet as a model: inputs per UNET_IO, output `noise_pred`. */
export function buildUnetGraph(weights: TensorSource, cfg: UNetConfig, options: UnetGraphOptions = {}): ModelDef {
  const g = new GraphBuilder(unetBuilderOptions('unet', options));
  const x = declareUnetInputs(g, cfg, options);
  const noise = unetForward(g, new WeightScope(g, weights), cfg, x);
  g.output(noise, UNET_IO.output);
  return g.build();
}
