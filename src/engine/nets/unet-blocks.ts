// diffusers unet_2d_blocks.py as graph builders: DownBlock2D / CrossAttnDownBlock2D,
// UNetMidBlock2DCrossAttn / UNetMidBlock2D, UpBlock2D / CrossAttnUpBlock2D, and the UNet's encoder
// (conv_in → down blocks → mid block) that the UNet and the ControlNet share.
import type { GraphBuilder, Tensor } from '../onnx/index.js';
import { transformer2d, type CrossContext } from './sdxl-attention.js';
import { convSame, downsample, resnetBlock, upsample } from './sdxl-blocks.js';
import type { DownBlockConfig, MidBlockConfig, UNetCoreConfig, UpBlockConfig } from './unet-config.js';
import type { WeightScope } from './sdxl-weights.js';

/** What every block needs besides its own weights. */
export interface BlockEnv {
  g: GraphBuilder;
  /** SiLU(emb) [T or B, E] for the resnets' time_emb_proj. */
  temb: Tensor;
  ctx: CrossContext;
  groups: number;
  eps: number;
  useLinearProjection: boolean;
}

/** A down block: x [B, Cin, H, W] → out, and the skips it leaves (one per resnet, one for the downsampler). */
export function downBlock(env: BlockEnv, w: WeightScope, x: Tensor, cfg: DownBlockConfig, downsamplePadding: number): { out: Tensor; skips: Tensor[] } {
  const { g } = env;
  const skips: Tensor[] = [];
  let h = x;
  for (let i = 0; i < cfg.layers; i++) {
    h = resnetBlock(g, w.at(`resnets.${i}`), h, env.temb, { groups: env.groups, eps: env.eps });
    if (cfg.type === 'CrossAttnDownBlock2D') {
      h = transformer2d(g, w.at(`attentions.${i}`), h, env.ctx, {
        heads: cfg.heads, depth: cfg.transformerDepth[i]!, groups: env.groups, useLinearProjection: env.useLinearProjection,
      });
    }
    skips.push(h); // [B, C, H, W]
  }
  if (cfg.addDownsample) {
    h = downsample(g, w.at('downsamplers.0'), h, downsamplePadding); // [B, C, H/2, W/2]
    skips.push(h);
  }
  return { out: h, skips };
}

/** The mid block: resnet, then (attention, resnet) for the cross-attention kind. */
export function midBlock(env: BlockEnv, w: WeightScope, x: Tensor, cfg: MidBlockConfig): Tensor {
  const { g } = env;
  const res = { groups: env.groups, eps: env.eps, outputScale: cfg.scaleFactor };
  let h = resnetBlock(g, w.at('resnets.0'), x, env.temb, res);
  if (cfg.type === 'UNetMidBlock2DCrossAttn') {
    h = transformer2d(g, w.at('attentions.0'), h, env.ctx, {
      heads: cfg.heads, depth: cfg.transformerDepth, groups: env.groups, useLinearProjection: env.useLinearProjection,
    });
    h = resnetBlock(g, w.at('resnets.1'), h, env.temb, res);
  }
  return h;
}

/**
 * An up block: each resnet takes concat(h, the last remaining skip) on channels; `skips` are this
 * block's (in down order, consumed from the end). `nextSkip` sizes the upsampler's output.
 */
export function upBlock(env: BlockEnv, w: WeightScope, x: Tensor, skips: readonly Tensor[], cfg: UpBlockConfig, nextSkip?: Tensor): Tensor {
  const { g } = env;
  if (skips.length !== cfg.layers) throw new Error(`${w.path} needs ${cfg.layers} skips, got ${skips.length}`);
  let h = x;
  for (let i = 0; i < cfg.layers; i++) {
    h = g.concat([h, skips[skips.length - 1 - i]!], 1); // [B, C + Cskip, H, W]
    h = resnetBlock(g, w.at(`resnets.${i}`), h, env.temb, { groups: env.groups, eps: env.eps });
    if (cfg.type === 'CrossAttnUpBlock2D') {
      h = transformer2d(g, w.at(`attentions.${i}`), h, env.ctx, {
        heads: cfg.heads, depth: cfg.transformerDepth[i]!, groups: env.groups, useLinearProjection: env.useLinearProjection,
      });
    }
  }
  if (cfg.addUpsample) h = upsample(g, w.at('upsamplers.0'), h, nextSkip); // [B, C, 2H, 2W]
  return h;
}

/** How many skip tensors the encoder leaves: conv_in's output, then every resnet and downsampler. */
export function skipCount(cfg: UNetCoreConfig): number {
  return 1 + cfg.down.reduce((n, b) => n + b.layers + (b.addDownsample ? 1 : 0), 0);
}

/**
 * The encoder both nets share: conv_in (plus `addToStem`, the ControlNet's conditioning embedding),
 * the down blocks and the mid block. Returns the mid output and every skip in order.
 */
export function encoder(env: BlockEnv, w: WeightScope, sample: Tensor, cfg: UNetCoreConfig, addToStem?: (h: Tensor) => Tensor): { mid: Tensor; skips: Tensor[] } {
  const { g } = env;
  let h = g.scope('conv_in', () => convSame(g, w, 'conv_in', sample)); // [B, C0, H, W]
  if (addToStem) h = addToStem(h);
  const skips: Tensor[] = [h];
  cfg.down.forEach((b, i) => {
    const r = downBlock(env, w.at(`down_blocks.${i}`), h, b, cfg.downsamplePadding);
    h = r.out;
    skips.push(...r.skips);
  });
  if (cfg.mid) h = midBlock(env, w.at('mid_block'), h, cfg.mid); // [B, Clast, H/2^k, W/2^k]
  return { mid: h, skips };
}
