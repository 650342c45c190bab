// Every parameter a diffusers UNet2DConditionModel / ControlNetModel of a given config has, with
// its shape, in diffusers' names: what a tiny random-weight model (the smoke set, tests) must
// write, and a checklist for converted checkpoints.
import type { ControlNetConfig, UNetConfig, UNetCoreConfig } from './unet-config.js';
import { attn2Modules } from './unet-config.js';

export type ShapeMap = Map<string, number[]>;

function linear(m: ShapeMap, name: string, out: number, inp: number, bias = true): void {
  m.set(`${name}.weight`, [out, inp]);
  if (bias) m.set(`${name}.bias`, [out]);
}

function conv(m: ShapeMap, name: string, out: number, inp: number, k: number): void {
  m.set(`${name}.weight`, [out, inp, k, k]);
  m.set(`${name}.bias`, [out]);
}

function norm(m: ShapeMap, name: string, c: number): void {
  m.set(`${name}.weight`, [c]);
  m.set(`${name}.bias`, [c]);
}

function resnet(m: ShapeMap, p: string, inp: number, out: number, temb: number): void {
  norm(m, `${p}.norm1`, inp);
  conv(m, `${p}.conv1`, out, inp, 3);
  linear(m, `${p}.time_emb_proj`, out, temb);
  norm(m, `${p}.norm2`, out);
  conv(m, `${p}.conv2`, out, out, 3);
  if (inp !== out) conv(m, `${p}.conv_shortcut`, out, inp, 1);
}

function transformer(m: ShapeMap, p: string, c: number, depth: number, cross: number, linearProj: boolean): void {
  norm(m, `${p}.norm`, c);
  const proj = (name: string): void => (linearProj ? linear(m, `${p}.${name}`, c, c) : conv(m, `${p}.${name}`, c, c, 1));
  proj('proj_in');
  for (let j = 0; j < depth; j++) {
    const b = `${p}.transformer_blocks.${j}`;
    for (const n of ['norm1', 'norm2', 'norm3']) norm(m, `${b}.${n}`, c);
    for (const [attn, ctx] of [['attn1', c], ['attn2', cross]] as const) {
      linear(m, `${b}.${attn}.to_q`, c, c, false);
      linear(m, `${b}.${attn}.to_k`, c, ctx, false);
      linear(m, `${b}.${attn}.to_v`, c, ctx, false);
      linear(m, `${b}.${attn}.to_out.0`, c, c);
    }
    linear(m, `${b}.ff.net.0.proj`, 8 * c, c); // GEGLU: 2 × (4c)
    linear(m, `${b}.ff.net.2`, c, 4 * c);
  }
  proj('proj_out');
}

function encoderShapes(m: ShapeMap, cfg: UNetCoreConfig): void {
  const e = cfg.embedding;
  linear(m, 'time_embedding.linear_1', e.timeEmbedDim, e.timeProjDim);
  linear(m, 'time_embedding.linear_2', e.timeEmbedDim, e.timeEmbedDim);
  if (e.textTime) {
    linear(m, 'add_embedding.linear_1', e.timeEmbedDim, e.textTime.projectionInputDim);
    linear(m, 'add_embedding.linear_2', e.timeEmbedDim, e.timeEmbedDim);
  }
  conv(m, 'conv_in', cfg.blockOutChannels[0]!, cfg.inChannels, cfg.convInKernel);
  let ch = cfg.blockOutChannels[0]!;
  cfg.down.forEach((b, i) => {
    for (let l = 0; l < b.layers; l++) {
      resnet(m, `down_blocks.${i}.resnets.${l}`, l === 0 ? ch : b.channels, b.channels, e.timeEmbedDim);
      if (b.type === 'CrossAttnDownBlock2D') transformer(m, `down_blocks.${i}.attentions.${l}`, b.channels, b.transformerDepth[l]!, b.crossAttentionDim, cfg.useLinearProjection);
    }
    if (b.addDownsample) conv(m, `down_blocks.${i}.downsamplers.0.conv`, b.channels, b.channels, 3);
    ch = b.channels;
  });
  if (cfg.mid) {
    resnet(m, 'mid_block.resnets.0', ch, ch, e.timeEmbedDim);
    if (cfg.mid.type === 'UNetMidBlock2DCrossAttn') {
      transformer(m, 'mid_block.attentions.0', ch, cfg.mid.transformerDepth, cfg.mid.crossAttentionDim, cfg.useLinearProjection);
      resnet(m, 'mid_block.resnets.1', ch, ch, e.timeEmbedDim);
    }
  }
}

/** The UNet's parameters. */
export function unetWeightShapes(cfg: UNetConfig): ShapeMap {
  const m: ShapeMap = new Map();
  encoderShapes(m, cfg);
  const rev = [...cfg.blockOutChannels].reverse();
  let out = rev[0]!;
  cfg.up.forEach((b, i) => {
    const prev = out;
    out = b.channels;
    const input = rev[Math.min(i + 1, rev.length - 1)]!;
    for (let l = 0; l < b.layers; l++) {
      const skip = l === b.layers - 1 ? input : out;
      const inp = l === 0 ? prev : out;
      resnet(m, `up_blocks.${i}.resnets.${l}`, inp + skip, out, cfg.embedding.timeEmbedDim);
      if (b.type === 'CrossAttnUpBlock2D') transformer(m, `up_blocks.${i}.attentions.${l}`, out, b.transformerDepth[l]!, b.crossAttentionDim, cfg.useLinearProjection);
    }
    if (b.addUpsample) conv(m, `up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  });
  norm(m, 'conv_norm_out', cfg.blockOutChannels[0]!);
  conv(m, 'conv_out', cfg.outChannels, cfg.blockOutChannels[0]!, cfg.convOutKernel);
  return m;
}

/** The ControlNet's parameters. */
export function controlNetWeightShapes(cfg: ControlNetConfig): ShapeMap {
  const m: ShapeMap = new Map();
  encoderShapes(m, cfg);
  const e = cfg.conditioningEmbeddingChannels;
  conv(m, 'controlnet_cond_embedding.conv_in', e[0]!, cfg.conditioningChannels, 3);
  for (let i = 0; i < e.length - 1; i++) {
    conv(m, `controlnet_cond_embedding.blocks.${2 * i}`, e[i]!, e[i]!, 3);
    conv(m, `controlnet_cond_embedding.blocks.${2 * i + 1}`, e[i + 1]!, e[i]!, 3);
  }
  conv(m, 'controlnet_cond_embedding.conv_out', cfg.blockOutChannels[0]!, e[e.length - 1]!, 3);
  const skipChannels = [cfg.blockOutChannels[0]!];
  for (const b of cfg.down) {
    for (let l = 0; l < b.layers; l++) skipChannels.push(b.channels);
    if (b.addDownsample) skipChannels.push(b.channels);
  }
  skipChannels.forEach((c, i) => conv(m, `controlnet_down_blocks.${i}`, c, c, 1));
  const last = cfg.blockOutChannels[cfg.blockOutChannels.length - 1]!;
  conv(m, 'controlnet_mid_block', last, last, 1);
  return m;
}

/** InstantID ip_adapter.{2n+1}.to_k_ip / to_v_ip for every attn2 of the UNet (keys with the `ip_adapter.` prefix). */
export function ipAdapterWeightShapes(cfg: UNetConfig, shapes: ShapeMap = unetWeightShapes(cfg)): ShapeMap {
  const m: ShapeMap = new Map();
  attn2Modules(cfg).forEach((path, n) => {
    const [inner, cross] = shapes.get(`${path}.to_k.weight`)!;
    m.set(`ip_adapter.${2 * n + 1}.to_k_ip.weight`, [inner!, cross!]);
    m.set(`ip_adapter.${2 * n + 1}.to_v_ip.weight`, [inner!, cross!]);
  });
  return m;
}
