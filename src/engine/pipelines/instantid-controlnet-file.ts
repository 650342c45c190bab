// An extra ControlNet as a single weights file (diffusers names, e.g. diffusion_pytorch_model.safetensors
// of diffusers/controlnet-depth-sdxl-1.0 saved alone): config.json beside it (<name>.json or config.json)
// when there is one, else the diffusers config read back from the tensor shapes. What the shapes do not
// tell is assumed as SDXL has it and listed: attention head size 64, 32 norm groups, the 1280-wide pooled
// text embedding (so addition_time_embed_dim = (projection input − 1280) / 6). Original-layout
// (`control_model.*` / `input_blocks.*`) files are refused with what to download instead.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { EngineError } from '../errors.js';
import { readJsonObject } from '../formats/diffusers-component.js';
import type { TensorSource } from '../formats/keymaps/source.js';
import { openWeights } from '../formats/weights.js';

export interface InferredControlNetConfig {
  config: Record<string, unknown>;
  /** Keys filled in by convention, not read from the weights. */
  assumed: string[];
}

/** config.json for a single ControlNet file: `<file name>.json` or `config.json` in its folder. */
export function controlNetConfigBeside(file: string): string | undefined {
  const stem = join(dirname(file), basename(file, extname(file)));
  return [`${stem}.json`, join(dirname(file), 'config.json')].find((p) => existsSync(p));
}

function count(w: TensorSource, prefix: (i: number) => string): number {
  let n = 0;
  while (w.has(prefix(n))) n++;
  return n;
}

/** The ControlNetModel config of diffusers-named ControlNet weights. */
export function inferControlNetConfig(w: TensorSource, what: string): InferredControlNetConfig {
  if (!w.has('controlnet_cond_embedding.conv_in.weight')) {
    const original = w.has('control_model.input_blocks.0.0.weight') || w.has('input_blocks.0.0.weight') || w.has('input_hint_block.0.weight');
    throw new EngineError('bad_model_files', `${what} is not a diffusers ControlNet (no controlnet_cond_embedding.conv_in.weight)` +
      (original ? ': it is in the original (A1111) layout; save the diffusers repository\'s config.json and diffusion_pytorch_model.safetensors instead' : ''));
  }
  const shape = (n: string): number[] => w.info(n).shape;
  const levels = count(w, (i) => `down_blocks.${i}.resnets.0.conv1.weight`);
  if (levels === 0) throw new EngineError('bad_model_files', `${what} has no down_blocks.0.resnets.0.conv1.weight`);
  const blockOut = Array.from({ length: levels }, (_, i) => shape(`down_blocks.${i}.resnets.0.conv1.weight`)[0]!);
  const layers = count(w, (j) => `down_blocks.0.resnets.${j}.conv1.weight`);
  const hasAttn = blockOut.map((_, i) => w.has(`down_blocks.${i}.attentions.0.proj_in.weight`));
  const depth = blockOut.map((_, i) => (hasAttn[i] ? count(w, (j) => `down_blocks.${i}.attentions.0.transformer_blocks.${j}.attn1.to_q.weight`) : 1));
  const firstAttn = hasAttn.indexOf(true);
  const attnPrefix = firstAttn >= 0 ? `down_blocks.${firstAttn}.attentions.0.` : 'mid_block.attentions.0.';
  const hasMidAttn = w.has('mid_block.attentions.0.proj_in.weight');
  const cross = w.has(`${attnPrefix}transformer_blocks.0.attn2.to_k.weight`) ? shape(`${attnPrefix}transformer_blocks.0.attn2.to_k.weight`)[1]! : undefined;
  const assumed = ['attention_head_dim (heads = channels / 64)', 'norm_num_groups 32'];
  const cond = [shape('controlnet_cond_embedding.conv_in.weight')[0]!];
  const blocks = count(w, (j) => `controlnet_cond_embedding.blocks.${j}.weight`);
  for (let j = 1; j < blocks; j += 2) cond.push(shape(`controlnet_cond_embedding.blocks.${j}.weight`)[0]!);
  const config: Record<string, unknown> = {
    _class_name: 'ControlNetModel',
    in_channels: shape('conv_in.weight')[1],
    conditioning_channels: shape('controlnet_cond_embedding.conv_in.weight')[1],
    conditioning_embedding_out_channels: cond,
    block_out_channels: blockOut,
    down_block_types: hasAttn.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    mid_block_type: hasMidAttn ? 'UNetMidBlock2DCrossAttn' : 'UNetMidBlock2D',
    layers_per_block: layers,
    transformer_layers_per_block: depth,
    attention_head_dim: blockOut.map((c) => Math.max(1, Math.round(c / 64))),
    use_linear_projection: firstAttn >= 0 ? shape(`${attnPrefix}proj_in.weight`).length === 2 : false,
    norm_num_groups: 32,
    controlnet_conditioning_channel_order: 'rgb',
    global_pool_conditions: false,
    ...(cross !== undefined ? { cross_attention_dim: cross } : {}),
  };
  if (w.has('add_embedding.linear_1.weight')) {
    const projIn = shape('add_embedding.linear_1.weight')[1]!;
    config.addition_embed_type = 'text_time';
    config.projection_class_embeddings_input_dim = projIn;
    config.addition_time_embed_dim = (projIn - 1280) / 6;
    assumed.push('addition_time_embed_dim (a 1280-wide pooled text embedding, as SDXL)');
    if (!Number.isInteger(config.addition_time_embed_dim) || (config.addition_time_embed_dim as number) <= 0) {
      throw new EngineError('bad_model_files', `${what}: add_embedding takes ${projIn} inputs, not SDXL's 1280 + 6·d; save its config.json beside it as ${basename(what, extname(what))}.json`);
    }
  }
  return { config, assumed };
}

/** The config for a ControlNet weights file: the JSON beside it, else inferred from the weights. */
export function singleFileControlNetConfig(file: string, w: TensorSource): InferredControlNetConfig {
  const beside = controlNetConfigBeside(file);
  if (beside) return { config: readJsonObject(beside), assumed: [] };
  return inferControlNetConfig(w, file);
}

/** The config.json of a ControlNet folder or single file (without loading it), e.g. to check it fits a UNet. */
export function controlNetConfigAt(path: string): Record<string, unknown> {
  if (statSync(path).isDirectory()) return readJsonObject(join(path, 'config.json'));
  const w = openWeights(path);
  try {
    return singleFileControlNetConfig(path, w).config;
  } finally {
    w.close();
  }
}
