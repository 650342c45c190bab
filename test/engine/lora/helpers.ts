// Shared by the LoRA tests: the tiny golden configs, SDXL base's UNet config, and a LoRA file writer.
import { loadCase } from '../../../src/engine/golden/case.js';
import type { SdxlConfigs } from '../../../src/engine/formats/lora-keymap.js';
import { encodeSafetensors, type TensorToWrite } from '../../../src/engine/formats/safetensors-write.js';
import { golden } from '../../helpers/paths.js';
import { scratchDir } from '../formats/fixtures.js';

export function caseConfig(name: string): Record<string, unknown> {
  const c = loadCase(golden(name));
  c.close();
  return c.config;
}

/** The tiny SDXL of the goldens: unet-sdxl, clip-text-l, clip-text-g. */
export function tinyConfigs(): Required<SdxlConfigs> {
  return { unet: caseConfig('unet-sdxl'), textEncoder: caseConfig('clip-text-l'), textEncoder2: caseConfig('clip-text-g') };
}

/** stabilityai/stable-diffusion-xl-base-1.0 unet/config.json, the fields that shape the modules. */
export const SDXL_BASE_UNET = {
  block_out_channels: [320, 640, 1280],
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  layers_per_block: 2,
  transformer_layers_per_block: [1, 2, 10],
  cross_attention_dim: 2048,
  use_linear_projection: true,
  in_channels: 4,
  out_channels: 4,
  addition_embed_type: 'text_time',
  addition_time_embed_dim: 256,
  projection_class_embeddings_input_dim: 2816,
};

/** Deterministic small values (no randomness in assertions). */
export function ramp(n: number, scale = 0.01, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + offset) * scale);
}

/** A LoRA factor pair (and optional alpha) for a module of the given weight shape. */
export function factors(name: string, weightShape: readonly number[], rank: number, opts: { alpha?: number; down?: string; up?: string } = {}): [string, TensorToWrite][] {
  const [out, inp, kh, kw] = weightShape as [number, number, number?, number?];
  const conv = kh !== undefined;
  const downShape = conv ? [rank, inp, kh, kw!] : [rank, inp];
  const upShape = conv ? [out, rank, 1, 1] : [out, rank];
  const n = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  const entries: [string, TensorToWrite][] = [
    [`${name}.${opts.down ?? 'lora_down.weight'}`, { dtype: 'F32', shape: downShape, data: ramp(n(downShape), 0.1, 1) }],
    [`${name}.${opts.up ?? 'lora_up.weight'}`, { dtype: 'F32', shape: upShape, data: ramp(n(upShape), 0.1, 2) }],
  ];
  if (opts.alpha !== undefined) entries.push([`${name}.alpha`, { dtype: 'F32', shape: [], data: Float32Array.of(opts.alpha) }]);
  return entries;
}

const scratch = scratchDir('lora');
let counter = 0;

/** Writes tensors as a .safetensors file in a scratch folder and returns its path. */
export function writeLoraFile(entries: Iterable<readonly [string, TensorToWrite]>, metadata?: Record<string, string>): string {
  return scratch.write(`lora-${++counter}.safetensors`, encodeSafetensors([...entries], metadata));
}

export function writeRaw(name: string, bytes: Uint8Array): string {
  return scratch.write(name, bytes);
}

export function removeScratch(): void {
  scratch.remove();
}
