// A tiny kohya-format LoRA for the smoke model set: the layers kohya sd-scripts trains on SDXL
// (every Linear of the UNet's transformers, optionally the LoCon convs of resnets, downsamplers and
// upsamplers, and the text encoders' attention and MLP Linears), named as sd-scripts writes them
// (SGM UNet paths, lora_te1_ / lora_te2_), with seeded random factors. Deterministic for a seed.
import type { TensorToWrite } from '../formats/safetensors-write.js';
import { writeSafetensors } from '../formats/safetensors-write.js';
import { clipTextModules, flat, sgmModuleName, unetLayout, unetModules, type SdxlConfigs } from '../formats/lora-keymap.js';

export interface SmokeLoraOptions {
  rank?: number;
  /** Stored per module as `.alpha`; default rank / 2 (kohya's usual network_alpha < dim). */
  alpha?: number;
  /** LoCon: also the 3×3 (and 1×1 shortcut) convs of resnets, downsamplers and upsamplers. Default true. */
  convs?: boolean;
  /** Default true (when the configs are given). */
  textEncoders?: boolean;
  seed?: number;
  /** Size of the effect: up factors are drawn from ±magnitude / rank. Default 0.05. */
  magnitude?: number;
}

/** mulberry32: a small seeded generator, enough for test weights. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const isTransformerLinear = (module: string): boolean => /\.attentions\.\d+\./.test(module);
const isLoconConv = (module: string): boolean =>
  /\.resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)$/.test(module) || /\.(downsamplers|upsamplers)\.0\.conv$/.test(module);

/** The LoRA's tensors, by kohya name, in a stable order. */
export function smokeLoraTensors(configs: SdxlConfigs, opts: SmokeLoraOptions = {}): Map<string, TensorToWrite> {
  const rank = opts.rank ?? 4;
  const alpha = opts.alpha ?? rank / 2;
  const magnitude = opts.magnitude ?? 0.05;
  const next = random(opts.seed ?? 1);
  const uniform = (n: number, bound: number): Float32Array => Float32Array.from({ length: n }, () => (next() * 2 - 1) * bound);
  const tensors = new Map<string, TensorToWrite>();
  const add = (name: string, shape: readonly number[]): void => {
    const [out, inp, kh = 1, kw = 1] = shape as [number, number, number?, number?];
    const conv = shape.length === 4;
    const fanIn = inp * kh * kw;
    tensors.set(`${name}.lora_down.weight`, { dtype: 'F32', shape: conv ? [rank, inp, kh, kw] : [rank, inp], data: uniform(rank * fanIn, 1 / Math.sqrt(fanIn)) });
    tensors.set(`${name}.lora_up.weight`, { dtype: 'F32', shape: conv ? [out, rank, 1, 1] : [out, rank], data: uniform(out * rank, magnitude / rank) });
    tensors.set(`${name}.alpha`, { dtype: 'F32', shape: [], data: Float32Array.of(alpha) });
  };
  if (configs.unet) {
    const layout = unetLayout(configs.unet);
    for (const [module, shape] of unetModules(configs.unet)) {
      if (!isTransformerLinear(module) && !((opts.convs ?? true) && isLoconConv(module))) continue;
      const sgm = sgmModuleName(module, layout);
      if (sgm !== undefined) add(`lora_unet_${flat(sgm)}`, shape);
    }
  }
  if (opts.textEncoders ?? true) {
    const encoders = [[configs.textEncoder, 'lora_te1_'], [configs.textEncoder2, 'lora_te2_']] as const;
    for (const [config, prefix] of encoders) {
      if (!config) continue;
      for (const [module, shape] of clipTextModules(config, false)) add(`${prefix}${flat(module)}`, shape);
    }
  }
  return tensors;
}

/** Writes the smoke LoRA as .safetensors with sd-scripts' metadata; returns how many modules it has. */
export async function writeSmokeLora(path: string, configs: SdxlConfigs, opts: SmokeLoraOptions = {}): Promise<{ modules: number }> {
  const tensors = smokeLoraTensors(configs, opts);
  const rank = opts.rank ?? 4;
  await writeSafetensors(path, tensors, {
    ss_network_module: 'networks.lora',
    ss_network_dim: String(rank),
    ss_network_alpha: String(opts.alpha ?? rank / 2),
    ss_base_model_version: 'sdxl_base_v1-0',
    ss_likeness: 'random weights',
  });
  return { modules: tensors.size / 3 };
}
