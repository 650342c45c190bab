// The smoke model set for InstantID: next to the tiny random SDXL model (smoke.ts), the parts InstantID
// adds — an IdentityNet (a ControlNet of the smoke UNet's sizes), an ip-adapter of the smoke sizes
// (Resampler `image_proj.*` + `ip_adapter.N.to_k_ip / to_v_ip`, written as safetensors: openWeights
// tells safetensors from a torch pickle by its first bytes, so the loader takes it as ip-adapter.bin's
// stand-in), canny / depth / openpose ControlNets, a tiny RANDOM Depth Anything (transformers layout),
// a kohya LoRA, and a tiny RANDOM 512-d face recognition graph.
// Everything draws noise. The face DETECTOR is not written (insightface's models are licensed for
// non-commercial research only and are not ours to ship): give a path to an SCRFD .onnx to copy in.
//
// Layout under $LIKENESS_HOME/models (what the service's runner looks for):
//   smoke/                                     the SDXL model (diffusers layout; writeSmokeModel)
//   smoke/instantid/ControlNetModel/           IdentityNet (config.json + diffusion_pytorch_model.safetensors)
//   smoke/instantid/ip-adapter.safetensors     Resampler + IP-Adapter weights
//   smoke/antelopev2/glintr100.onnx            random recognizer (112×112×3 → 512)
//   smoke/antelopev2/<detector file name>      a copy of the detector, when one is given
//   smoke/depth-anything/                      random Depth Anything (config.json + model.safetensors)
//   controlnet/controlnet-canny-sdxl-1.0/      catalog ControlNet 454 (only when that slot is empty)
//   controlnet/controlnet-depth-sdxl-1.0/      catalog ControlNet 455 (only when that slot is empty)
//   controlnet/controlnet-openpose-sdxl-1.0/   catalog ControlNet 458 (only when that slot is empty)
//   loras/Vintage-Creepy-Creatures.safetensors catalog LoRA 622 (only when that slot is empty)
//   annotators/body_pose_model.pth             a tiny random openpose body model (torch.save; only when empty)
// The catalog slots are the real ones (validation checks them), so they are never overwritten.
// A rehearsal set (--size mid|full) writes Depth Anything small's and the released body model's real
// structures instead of the toy ones (random weights still), so preprocessing costs what it will.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from './formats/safetensors-write.js';
import { parseDepthAnythingConfig } from './control/depth/config.js';
import { buildDepthAnythingGraph } from './control/depth/graph.js';
import { depthAnythingWeightShapes } from './control/depth/shapes.js';
import { writeSmokeLora } from './lora/smoke.js';
import { OPENPOSE_BODY_FILE } from './control/openpose/index.js';
import { RELEASED_BODY_WIDTHS } from './control/openpose/body-net.js';
import { writeSmokeBodyPoseModel } from './control/openpose/smoke.js';
import { buildControlNetGraph } from './nets/controlnet.js';
import { buildResamplerGraph, type ResamplerConfig } from './nets/resampler.js';
import { parseControlNetConfig, parseUNetConfig } from './nets/unet-config.js';
import { controlNetWeightShapes, ipAdapterWeightShapes } from './nets/unet-shapes.js';
import { GraphBuilder, writeModel } from './onnx/index.js';
import type { StateShapes } from './pipelines/state-shapes.js';
import { TorchGenerator } from './rng/torch-cpu.js';
import { SMOKE_CONFIG, SMOKE_MODEL_DIR, checkAgainstBuilder, fastRandomTensor, smokeTokenizerFiles, writeRandomSdxlModel, writeSmokeModel } from './smoke.js';
import { rehearsalConfigs, type RehearsalSize } from './smoke-sizes.js';
import { toFloat16 } from './formats/dtype.js';
import { SafetensorsFile } from './formats/safetensors.js';

/** Where the smoke set's InstantID parts and face models live, relative to $LIKENESS_HOME. */
export const SMOKE_INSTANTID_DIR = join(SMOKE_MODEL_DIR, 'instantid');
export const SMOKE_FACE_DIR = join(SMOKE_MODEL_DIR, 'antelopev2');
export const SMOKE_RECOGNIZER = 'glintr100.onnx';
/** Catalog slots the smoke set fills when they are empty. */
export const SMOKE_CANNY_DIR = join('models', 'controlnet', 'controlnet-canny-sdxl-1.0');
export const SMOKE_DEPTH_CONTROLNET_DIR = join('models', 'controlnet', 'controlnet-depth-sdxl-1.0');
export const SMOKE_OPENPOSE_CONTROLNET_DIR = join('models', 'controlnet', 'controlnet-openpose-sdxl-1.0');
/** The random Depth Anything, where the tool's depth preprocessor looks for the smoke set's copy. */
export const SMOKE_DEPTH_DIR = join(SMOKE_MODEL_DIR, 'depth-anything');

/** A Depth Anything V1 config.json (transformers layout, Dinov2 inside) of the given widths. */
function depthAnythingConfig(w: { hidden: number; layers: number; heads: number; mlp: number; neck: number[]; fusion: number; head: number }, note: string): Record<string, unknown> {
  return {
    model_type: 'depth_anything',
    architectures: ['DepthAnythingForDepthEstimation'],
    backbone_config: {
      model_type: 'dinov2', hidden_size: w.hidden, num_hidden_layers: w.layers, num_attention_heads: w.heads, mlp_ratio: w.mlp, patch_size: 14,
      image_size: 518, layer_norm_eps: 1e-6, hidden_act: 'gelu', apply_layernorm: true, reshape_hidden_states: false,
      out_indices: [w.layers - 3, w.layers - 2, w.layers - 1, w.layers],
    },
    reassemble_hidden_size: w.hidden, patch_size: 14, reassemble_factors: [4, 2, 1, 0.5], neck_hidden_sizes: w.neck,
    fusion_hidden_size: w.fusion, head_in_index: -1, head_hidden_size: w.head, depth_estimation_type: 'relative', max_depth: 1,
    likeness: note,
  };
}

/**
 * LiheYoung/depth-anything-small-hf's config.json (Dinov2 ViT-S/14: hidden 384, 12 layers, 6 heads;
 * neck [48, 96, 192, 384], fusion 64, head 32 — 24.8M parameters): the rehearsal sets' Depth Anything.
 */
export function depthAnythingSmallConfig(): Record<string, unknown> {
  return depthAnythingConfig({ hidden: 384, layers: 12, heads: 6, mlp: 4, neck: [48, 96, 192, 384], fusion: 64, head: 32 }, 'random weights (rehearsal set)');
}

/** A tiny Depth Anything config.json: V1's structure at toy width. */
export function smokeDepthAnythingConfig(): Record<string, unknown> {
  return depthAnythingConfig({ hidden: 16, layers: 4, heads: 2, mlp: 2, neck: [4, 6, 8, 8], fusion: 8, head: 4 }, 'random weights (smoke set)');
}
export const SMOKE_LORA_FILE = join('models', 'loras', 'Vintage-Creepy-Creatures.safetensors');
/** Catalog LoRA 480, which the rehearsal sets fill too. */
export const SMOKE_LORA_FILE_2 = join('models', 'loras', 'Minimalist-Flat-Icons-v1.0.safetensors');

/** Whether a safetensors file is one the smoke writers made (random weights), so a rehearsal set may replace it. */
function writtenBySmoke(path: string): boolean {
  if (!existsSync(path)) return false;
  try {
    const f = SafetensorsFile.open(path);
    try {
      return f.metadata.likeness === 'random weights' || f.metadata.ss_likeness === 'random weights';
    } finally {
      f.close();
    }
  } catch {
    return false;
  }
}

/** The Resampler of the smoke set: InstantID's structure (16 queries, 512-d input) at toy width. */
export const SMOKE_RESAMPLER: ResamplerConfig = {
  dim: 64, depth: 2, dimHead: 64, heads: 1, numQueries: 16, embeddingDim: 512, outputDim: SMOKE_CONFIG.unet.cross_attention_dim, ffMult: 2,
};

/** InstantID's Resampler (ip-adapter.bin's image_proj) for a UNet of cross-attention width `outputDim`. */
export function instantIdResamplerConfig(outputDim: number): ResamplerConfig {
  return { dim: 1280, depth: 4, dimHead: 64, heads: 20, numQueries: 16, embeddingDim: 512, outputDim, ffMult: 4 };
}

/** A ControlNet config.json matching a UNet config (its down half and mid block); the smoke UNet's by default. */
export function smokeControlNetConfig(unet: Record<string, unknown> = SMOKE_CONFIG.unet, rehearsal = false): Record<string, unknown> {
  const { up_block_types: _up, out_channels: _out, sample_size: _size, ...down } = unet;
  return {
    ...down,
    _class_name: 'ControlNetModel',
    conditioning_channels: 3,
    conditioning_embedding_out_channels: rehearsal ? [16, 32, 96, 256] : [8, 8, 16, 16],
    controlnet_conditioning_channel_order: 'rgb',
    global_pool_conditions: false,
  };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Seeded values near unit scale (as smoke.ts draws them): norms ≈ 1, biases ≈ 0, matrices ~ N(0, 1/fan_in). */
function randomTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const noise = new TorchGenerator(BigInt((fnv1a(name) ^ seed) >>> 0)).randn(shape);
  const isVector = shape.length === 1;
  const isNorm = isVector && name.endsWith('.weight');
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const scale = isNorm ? 0.05 : isVector ? 0.02 : name.endsWith('latents') ? 1 : 1 / Math.sqrt(fanIn);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.fround((isNorm ? 1 : 0) + noise[i]! * scale);
  return noise;
}

function tensors(prefix: string, shapes: StateShapes, seed: number, rehearsal = false): [string, TensorToWrite][] {
  return [...shapes].map(([name, shape]) => [`${prefix}${name}`, rehearsal
    ? { dtype: 'F16', shape, data: () => toFloat16(fastRandomTensor(`${prefix}${name}`, shape, seed)) }
    : { dtype: 'F32', shape, data: () => randomTensor(`${prefix}${name}`, shape, seed) }]);
}

/** The Resampler's state dict (keys without `image_proj.`), checked against the graph builder. */
export function smokeResamplerShapes(cfg: ResamplerConfig = SMOKE_RESAMPLER): StateShapes {
  const inner = cfg.heads * cfg.dimHead;
  const m = new Map<string, number[]>([
    ['latents', [1, cfg.numQueries, cfg.dim]],
    ['proj_in.weight', [cfg.dim, cfg.embeddingDim]], ['proj_in.bias', [cfg.dim]],
    ['proj_out.weight', [cfg.outputDim, cfg.dim]], ['proj_out.bias', [cfg.outputDim]],
    ['norm_out.weight', [cfg.outputDim]], ['norm_out.bias', [cfg.outputDim]],
  ]);
  for (let i = 0; i < cfg.depth; i++) {
    const a = `layers.${i}.0`;
    const f = `layers.${i}.1`;
    for (const n of ['norm1', 'norm2']) m.set(`${a}.${n}.weight`, [cfg.dim]).set(`${a}.${n}.bias`, [cfg.dim]);
    m.set(`${a}.to_q.weight`, [inner, cfg.dim]).set(`${a}.to_kv.weight`, [2 * inner, cfg.dim]).set(`${a}.to_out.weight`, [cfg.dim, inner]);
    m.set(`${f}.0.weight`, [cfg.dim]).set(`${f}.0.bias`, [cfg.dim]);
    m.set(`${f}.1.weight`, [cfg.ffMult * cfg.dim, cfg.dim]).set(`${f}.3.weight`, [cfg.dim, cfg.ffMult * cfg.dim]);
  }
  checkAgainstBuilder('Resampler', m, (w) => buildResamplerGraph(w, cfg));
  return m;
}

async function writeControlNet(dir: string, seed: number, tag: string, unet: Record<string, unknown> = SMOKE_CONFIG.unet, rehearsal = false): Promise<void> {
  const config = smokeControlNetConfig(unet, rehearsal);
  const parsed = parseControlNetConfig(config);
  const shapes = controlNetWeightShapes(parsed);
  checkAgainstBuilder('ControlNet', shapes, (w) => buildControlNetGraph(w, parsed));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const list = tensors(`${tag}/`, shapes, seed, rehearsal).map(([n, t]): [string, TensorToWrite] => [n.slice(tag.length + 1), t]);
  await writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), list, { format: 'pt', likeness: 'random weights' });
}

/**
 * The random Depth Anything of the smoke set (config.json + model.safetensors) into `dir`: toy width,
 * or for a rehearsal set Depth Anything small's real structure in F16.
 */
export async function writeSmokeDepthAnything(dir: string, seed = 0, rehearsal = false): Promise<void> {
  const config = rehearsal ? depthAnythingSmallConfig() : smokeDepthAnythingConfig();
  const parsed = parseDepthAnythingConfig(config);
  const shapes = depthAnythingWeightShapes(parsed);
  checkAgainstBuilder('Depth Anything', shapes, (w) => buildDepthAnythingGraph(w, parsed));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const list = tensors('depth/', shapes, seed, rehearsal).map(([n, t]): [string, TensorToWrite] => [n.slice('depth/'.length), t]);
  await writeSafetensors(join(dir, 'model.safetensors'), list, { format: 'pt', likeness: 'random weights' });
}

/** A tiny random recognizer: [N, 3, 112, 112] → per-pixel mix to [N, 12] → [N, 512]. Not a face model. */
export async function writeRandomRecognizer(path: string, seed = 0): Promise<void> {
  const S = 112;
  const K = 4;
  const D = 512;
  const g = new GraphBuilder({ name: 'likeness-smoke-random-recognizer' });
  const x = g.input('input.1', ['N', 3, S, S]);
  const spatial = new TorchGenerator(BigInt(seed + 11)).randn([S * S, K]).map((v) => v / S);
  const mix = new TorchGenerator(BigInt(seed + 12)).randn([3 * K, D]);
  const h = g.matmul(g.reshape(x, [0, 3, S * S]), g.param('spatial', [S * S, K], spatial));
  g.output(g.matmul(g.reshape(h, [0, 3 * K]), g.param('mix', [3 * K, D], mix)), 'embedding');
  await writeModel(g.build(), path);
}

export interface SmokeInstantIdOptions {
  seed?: number;
  /** An SCRFD detector .onnx (with keypoints) to copy into the set; without it face analysis needs antelopev2. */
  detector?: string;
  /** Fill the empty catalog slots (ControlNets 454, 455, 458, LoRAs 622 and, for mid / full, 480). Default true. */
  catalog?: boolean;
  /**
   * 'toy' (default, what CI uses), or a rehearsal set: 'mid' (SDXL's architecture, UNet ≈ 1/10) or
   * 'full' (SDXL base's own sizes), in F16 with InstantID's real Resampler, rank-32 LoRAs. A rehearsal
   * set replaces catalog files that an earlier smoke set wrote (never a file you installed).
   */
  size?: RehearsalSize;
}

export interface SmokeInstantIdSet {
  model: string;
  identityNet: string;
  ipAdapter: string;
  recognizer: string;
  detector?: string;
  /** Catalog files written (slots that were already filled are left alone and not listed). */
  catalog: string[];
}

/** Writes the smoke SDXL model and its InstantID parts under `home` (see the header for the layout). */
export async function writeSmokeInstantIdSet(home: string, options: SmokeInstantIdOptions = {}): Promise<SmokeInstantIdSet> {
  const seed = (options.seed ?? 0) >>> 0;
  const size = options.size ?? 'toy';
  const rehearsal = size !== 'toy';
  const configs = rehearsalConfigs(size);
  const model = rehearsal
    ? await writeRandomSdxlModel(join(home, SMOKE_MODEL_DIR), configs, { seed, rehearsal: true })
    : await writeSmokeModel(join(home, SMOKE_MODEL_DIR), { seed });
  const idDir = join(home, SMOKE_INSTANTID_DIR);
  const identityNet = join(idDir, 'ControlNetModel');
  await writeControlNet(identityNet, seed, 'identitynet', configs.unet, rehearsal);
  const ipAdapter = join(idDir, 'ip-adapter.safetensors');
  const unetShapes = ipAdapterWeightShapes(parseUNetConfig(configs.unet));
  const resampler = rehearsal ? smokeResamplerShapes(instantIdResamplerConfig(configs.unet.cross_attention_dim as number)) : smokeResamplerShapes();
  await writeSafetensors(ipAdapter, [...tensors('image_proj.', resampler, seed, rehearsal), ...tensors('', unetShapes, seed, rehearsal)],
    { format: 'pt', likeness: 'random weights' });
  const faceDir = join(home, SMOKE_FACE_DIR);
  await mkdir(faceDir, { recursive: true });
  const recognizer = join(faceDir, SMOKE_RECOGNIZER);
  await writeRandomRecognizer(recognizer, seed);
  await writeSmokeDepthAnything(join(home, SMOKE_DEPTH_DIR), seed, rehearsal);
  let detector: string | undefined;
  if (options.detector) {
    detector = join(faceDir, basename(options.detector));
    await copyFile(options.detector, detector);
  }
  const catalog: string[] = [];
  if (options.catalog ?? true) {
    for (const [slot, tag, real] of [
      [SMOKE_CANNY_DIR, 'canny', 'diffusers/controlnet-canny-sdxl-1.0'],
      [SMOKE_DEPTH_CONTROLNET_DIR, 'depth', 'diffusers/controlnet-depth-sdxl-1.0'],
      [SMOKE_OPENPOSE_CONTROLNET_DIR, 'openpose', 'thibaud/controlnet-openpose-sdxl-1.0'],
    ] as const) {
      const dir = join(home, slot);
      if (existsSync(join(dir, 'config.json')) && !(rehearsal && writtenBySmoke(join(dir, 'diffusion_pytorch_model.safetensors')))) continue;
      await writeControlNet(dir, seed, tag, configs.unet, rehearsal);
      await writeFile(join(dir, 'README.md'), `Written by \`likeness models smoke\`: a RANDOM ControlNet of the smoke model's sizes. Replace it with ${real}.\n`);
      catalog.push(dir);
    }
    const vocab = Object.keys(smokeTokenizerFiles().vocab).length;
    const te = { vocab_size: vocab, ...configs.text_encoder };
    const te2 = { vocab_size: vocab, ...configs.text_encoder_2 };
    const loraFiles = rehearsal ? [SMOKE_LORA_FILE, SMOKE_LORA_FILE_2] : [SMOKE_LORA_FILE];
    for (const [k, file] of loraFiles.entries()) {
      const lora = join(home, file);
      if (existsSync(lora) && !(rehearsal && writtenBySmoke(lora))) continue;
      await mkdir(join(home, 'models', 'loras'), { recursive: true });
      await writeSmokeLora(lora, { unet: configs.unet, textEncoder: te, textEncoder2: te2 },
        { seed: seed + 1 + k, ...(rehearsal ? { rank: 32, alpha: 16, convs: false } : {}) });
      catalog.push(lora);
    }
    // The body model has no metadata to mark it random: a rehearsal set replaces only a file of the
    // toy set's size (≈ 0.3 MB; the released body_pose_model.pth is 209 MB) and writes the released widths.
    const bodyPose = join(home, OPENPOSE_BODY_FILE);
    const toyBody = existsSync(bodyPose) && statSync(bodyPose).size < 2 ** 20;
    if (!existsSync(bodyPose) || (rehearsal && toyBody)) {
      catalog.push(await writeSmokeBodyPoseModel(bodyPose, { seed, ...(rehearsal ? { widths: RELEASED_BODY_WIDTHS } : {}) }));
    }
  }
  return { model, identityNet, ipAdapter, recognizer, ...(detector ? { detector } : {}), catalog };
}
