// Rehearsal sizes of the random-weight SDXL set (the toy SMOKE_CONFIG stays the default and the one
// CI uses):
//   full  SDXL base 1.0's own configs (UNet 2.57 B parameters, VAE, CLIP ViT-L + OpenCLIP bigG)
//   mid   SDXL's architecture with the UNet at about 1/10 (248 M: channels 160/320/640, transformer
//         depth 1/2/2, 32-wide heads, the real 2048-wide context and 2816 pooled + time input), the
//         real VAE and CLIP configs — for quicker rehearsal of everything but the UNet's cost.
import { SMOKE_CONFIG, type RandomSdxlConfigs } from './smoke.js';

export type RehearsalSize = 'toy' | 'mid' | 'full';

/** stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields the builders read). */
export const SDXL_BASE_UNET_CONFIG = {
  ...SMOKE_CONFIG.unet,
  sample_size: 128,
  block_out_channels: [320, 640, 1280],
  layers_per_block: 2,
  transformer_layers_per_block: [1, 2, 10],
  attention_head_dim: [5, 10, 20],
  cross_attention_dim: 2048,
  norm_num_groups: 32,
  addition_time_embed_dim: 256,
  projection_class_embeddings_input_dim: 2816,
};

/** SDXL base's vae/config.json. */
export const SDXL_BASE_VAE_CONFIG = {
  ...SMOKE_CONFIG.vae,
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  norm_num_groups: 32,
  sample_size: 1024,
};

/** SDXL base's text_encoder (CLIP ViT-L/14) and text_encoder_2 (OpenCLIP ViT-bigG/14) configs. */
export const SDXL_BASE_TEXT_ENCODER_CONFIG = {
  ...SMOKE_CONFIG.text_encoder, vocab_size: 49408, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, projection_dim: 768,
};
export const SDXL_BASE_TEXT_ENCODER_2_CONFIG = {
  ...SMOKE_CONFIG.text_encoder_2, vocab_size: 49408, hidden_size: 1280, intermediate_size: 5120, num_hidden_layers: 32, num_attention_heads: 20, projection_dim: 1280,
};

export const FULL_CONFIG: RandomSdxlConfigs = {
  unet: SDXL_BASE_UNET_CONFIG,
  vae: SDXL_BASE_VAE_CONFIG,
  text_encoder: SDXL_BASE_TEXT_ENCODER_CONFIG,
  text_encoder_2: SDXL_BASE_TEXT_ENCODER_2_CONFIG,
};

export const MID_CONFIG: RandomSdxlConfigs = {
  ...FULL_CONFIG,
  unet: { ...SDXL_BASE_UNET_CONFIG, block_out_channels: [160, 320, 640], transformer_layers_per_block: [1, 2, 2] },
};

export function rehearsalConfigs(size: RehearsalSize): RandomSdxlConfigs {
  return size === 'full' ? FULL_CONFIG : size === 'mid' ? MID_CONFIG : (SMOKE_CONFIG as RandomSdxlConfigs);
}
