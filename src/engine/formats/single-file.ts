// Single-file SDXL checkpoints as A1111, ComfyUI and Civitai share them (SGM naming, one .safetensors
// holding the UNet, the VAE and both text encoders; F32, F16 or BF16). The file is read lazily: only
// its header at open, then each tensor when a net asks for it, renamed to diffusers / transformers
// names on the way (keymaps/). Each component's config is inferred from the tensor shapes; what the
// shapes cannot tell (attention heads, norm groups, the VAE scaling factor) is filled in with SDXL's
// values and listed in `assumed`, and can be given through `overrides`.
//
// Heads: SDXL uses 64-channel heads everywhere, so heads = channels / 64 (UNet attention_head_dim
// [5, 10, 20] for 320/640/1280; 12 and 20 heads for CLIP-L 768 and bigG 1280) — the values the
// released diffusers configs hold. Widths that are not a multiple of 64 (tiny test models) get one
// head: give the real count in `overrides` when it matters.
import { EngineError } from '../errors.js';
import { openWeights, type WeightsFile } from './weights.js';
import { mapHfClip, mapOpenClip } from './keymaps/clip.js';
import { mapLdmVae } from './keymaps/ldm-vae.js';
import { mapSgmUnet, type MappedComponent } from './keymaps/sgm-unet.js';
import {
  MappedWeights, SDXL_COMPONENTS,
  type ComponentName, type MappedTensor, type ModelComponent, type ModelConfig, type SdxlModel,
} from './keymaps/source.js';

export type { ComponentName, ModelComponent, ModelConfig, SdxlModel, WeightSource } from './keymaps/source.js';

/** Where each component lives in an SGM SDXL checkpoint. */
export const SGM_PREFIXES: Readonly<Record<ComponentName, string>> = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  text_encoder: 'conditioner.embedders.0.transformer.',
  text_encoder_2: 'conditioner.embedders.1.model.',
};

export interface SingleFileOptions {
  /** Config values to use instead of the inferred ones (e.g. heads of a model with non-64-wide heads). */
  overrides?: Partial<Record<ComponentName, ModelConfig>>;
}

const hasPrefix = (names: readonly string[], prefix: string): boolean => names.some((n) => n.startsWith(prefix));

/**
 * Throws EngineError('unsupported_checkpoint') unless the tensor names are an SDXL base-architecture
 * checkpoint, saying what the file looks like instead.
 */
export function checkSdxlKeys(names: readonly string[], source: string): void {
  const refuse = (what: string): never => {
    throw new EngineError('unsupported_checkpoint', `${source} is ${what}; Likeness runs SDXL (base-architecture) checkpoints`);
  };
  const unet = hasPrefix(names, SGM_PREFIXES.unet);
  const te1 = hasPrefix(names, SGM_PREFIXES.text_encoder);
  const te2 = hasPrefix(names, SGM_PREFIXES.text_encoder_2);
  if (unet && te1 && te2) return;
  if (hasPrefix(names, 'cond_stage_model.transformer.')) {
    refuse('a Stable Diffusion 1.x checkpoint (one CLIP ViT-L text encoder under cond_stage_model.transformer.*, no second text encoder)');
  }
  if (hasPrefix(names, 'cond_stage_model.model.')) {
    refuse('a Stable Diffusion 2.x checkpoint (one OpenCLIP text encoder under cond_stage_model.model.*)');
  }
  if (unet && hasPrefix(names, 'conditioner.embedders.0.model.') && !te2) {
    refuse('an SDXL refiner checkpoint (only the OpenCLIP bigG text encoder, under conditioner.embedders.0.model.*)');
  }
  if (names.some((n) => n.startsWith('lora_') || /\.lora_(up|down)\.|\.lora_[AB]\./.test(n))) refuse('a LoRA, not a model checkpoint');
  if (names.includes('conv_in.weight') && hasPrefix(names, 'down_blocks.')) {
    refuse('a single diffusers-layout model file (conv_in, down_blocks…): open the diffusers folder it belongs to instead');
  }
  if (unet) {
    const missing = (['text_encoder', 'text_encoder_2'] as const).filter((c) => !hasPrefix(names, SGM_PREFIXES[c]));
    refuse(`an SGM UNet without ${missing.map((c) => `${c} (${SGM_PREFIXES[c]}*)`).join(' and ')}`);
  }
  const heads = [...new Set(names.map((n) => n.split('.').slice(0, 2).join('.')))].slice(0, 5);
  refuse(`not a Stable Diffusion checkpoint (no ${SGM_PREFIXES.unet}* tensors; its tensors start with ${heads.join(', ') || 'nothing'})`);
}

/** The tensors under `prefix`, without it, with their shapes. */
function shapesUnder(file: WeightsFile, prefix: string): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  for (const n of file.names()) if (n.startsWith(prefix)) out.set(n.slice(prefix.length), file.info(n).shape);
  return out;
}

function component(file: WeightsFile, prefix: string, mapped: MappedComponent, override: ModelConfig | undefined): ModelComponent {
  const table = new Map<string, MappedTensor>();
  for (const [to, t] of mapped.table) table.set(to, { source: prefix + t.source, derive: t.derive });
  const config = { ...mapped.config, ...(override ?? {}) };
  const assumed = mapped.assumed.filter((k) => !(override && k in override));
  return { config, assumed, weights: new MappedWeights(file, table) };
}

/** Opens an SGM SDXL checkpoint (.safetensors, or a torch .ckpt read safely) as four components. */
export function openSingleFile(path: string, options: SingleFileOptions = {}): SdxlModel {
  const file = openWeights(path);
  try {
    const names = file.names();
    checkSdxlKeys(names, path);
    const missing = SDXL_COMPONENTS.filter((c) => !hasPrefix(names, SGM_PREFIXES[c]));
    if (missing.length > 0) {
      throw new EngineError('missing_component', `${path} has no ${missing.map((c) => `${c} (${SGM_PREFIXES[c]}*)`).join(', ')}`);
    }
    const te1 = mapHfClip(shapesUnder(file, SGM_PREFIXES.text_encoder));
    const te2 = mapOpenClip(shapesUnder(file, SGM_PREFIXES.text_encoder_2));
    const unet = mapSgmUnet(shapesUnder(file, SGM_PREFIXES.unet), { pooledDim: te2.config.projection_dim as number });
    const vae = mapLdmVae(shapesUnder(file, SGM_PREFIXES.vae));
    const context = (te1.config.hidden_size as number) + (te2.config.hidden_size as number);
    if (unet.config.cross_attention_dim !== context) {
      throw new EngineError('bad_checkpoint', `${path}: the UNet attends to ${String(unet.config.cross_attention_dim)}-wide text, ` +
        `but the two text encoders give ${te1.config.hidden_size} + ${te2.config.hidden_size} = ${context}`);
    }
    const o = options.overrides ?? {};
    const model: SdxlModel = {
      path,
      layout: 'single-file',
      unet: component(file, SGM_PREFIXES.unet, unet, o.unet),
      vae: component(file, SGM_PREFIXES.vae, vae, o.vae),
      text_encoder: component(file, SGM_PREFIXES.text_encoder, te1, o.text_encoder),
      text_encoder_2: component(file, SGM_PREFIXES.text_encoder_2, te2, o.text_encoder_2),
      close: () => file.close(),
    };
    return model;
  } catch (err) {
    file.close();
    throw err;
  }
}
