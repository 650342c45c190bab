// The memory plan: an estimate of an InstantID task's peak resident memory from the model configs,
// the nets it needs, width × height and samples, made before the task starts, so that a task that
// cannot fit is refused with a message naming its biggest cost instead of driving the host into swap
// or the OOM killer.
//
//   peak = runtime + weights (every net of the warm pipeline, float32 on the CPU EP) + LoRA factors
//          + each stage's working memory — denoising (UNet + each ControlNet at batch B = 2n with CFG)
//          and decoding (the VAE, one batch of n); text encoding is small. They add up: ONNX
//          Runtime's CPU arena keeps a session's peak allocation after the run.
//
// A net's working memory is counted from its config, level by level: the skip tensors the UNet keeps
// for its up path (and a ControlNet returns, copied to the host and into the UNet's feeds), plus the
// largest level's live tensors (resnet: a few C × h × w; transformer: the GEGLU feed-forward's 8·C per
// token; fused attention keeps no score matrix). The VAE decoder's last level works at full image
// size. Constants were fitted against measured peaks (bench/memory-plan.ts, docs/benchmarks.md).
import { statSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { EngineError } from './errors.js';
import { findComponent } from './formats/diffusers-component.js';
import { openSdxlModel } from './formats/diffusers-folder.js';
import { openWeights } from './formats/weights.js';
import type { AppliedLora } from './lora/apply.js';
import { clipStateShapes, vaeStateShapes } from './pipelines/state-shapes.js';
import { parseControlNetConfig, parseUNetConfig, type ControlNetConfig, type UNetCoreConfig } from './nets/unet-config.js';
import { controlNetWeightShapes, unetWeightShapes } from './nets/unet-shapes.js';
import { parseVaeConfig, type VaeConfig } from './nets/vae-config.js';

type Json = Record<string, unknown>;

export interface MemoryPlanInput {
  unet: Json;
  vae: Json;
  textEncoder: Json;
  textEncoder2: Json;
  /** IdentityNet first, then the extra ControlNets (config.json dicts). */
  controlNets: readonly Json[];
  /** Bytes of the ip-adapter file (Resampler + IP-Adapter attention) as stored, and its element size. */
  ipAdapter?: { bytes: number; elementBytes: number };
  width: number;
  height: number;
  samples: number;
  /** guidance_scale > 1: the UNet and ControlNets run on [uncond, cond], batch 2n. */
  cfg: boolean;
  /** Values in the active LoRAs' factors (run-time branches hold them as float32 feeds). */
  loraFactorValues?: number;
}

export interface MemoryCost {
  name: string;
  bytes: number;
  /** What lowers it, for the refusal message. */
  lower: string;
  /** Held by the loaded models whatever the task asks ('model'), or set by the task's size ('task'). */
  kind: 'model' | 'task';
}

export interface MemoryPlan {
  peakBytes: number;
  /** The costs that add up to peakBytes, biggest first. */
  costs: MemoryCost[];
}

const F32 = 4;
/** Node, V8, ONNX Runtime and the service itself, measured idle with no model loaded. */
const RUNTIME_BYTES = 250 * 2 ** 20;
/** ORT's arena rounding and allocator slack over the live tensors (fitted). */
const ARENA = 1.3;

const params = (shapes: Map<string, readonly number[]>): number => {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
};

/** Skip tensors of the down path, in values per sample: conv_in's output and every resnet / downsample output. */
function skipValues(cfg: UNetCoreConfig, h: number, w: number): number {
  let n = cfg.blockOutChannels[0]! * h * w;
  let area = h * w;
  for (const b of cfg.down) {
    n += b.layers * b.channels * area;
    if (b.addDownsample) {
      area = Math.ceil(area / 4);
      n += b.channels * area;
    }
  }
  return n;
}

/** The largest level's live tensors, in values per sample. */
function workValues(cfg: UNetCoreConfig, h: number, w: number): number {
  let most = 0;
  let area = h * w;
  for (const b of cfg.down) {
    const attn = b.type === 'CrossAttnDownBlock2D';
    // up path at this level: concat of 2 inputs + resnet intermediates; transformer: GEGLU 8C + 4C, q/k/v/o
    const level = attn ? b.channels * area * 16 : b.channels * area * 6;
    most = Math.max(most, level);
    if (b.addDownsample) area = Math.ceil(area / 4);
  }
  return most;
}

function unetActivations(cfg: UNetCoreConfig, batch: number, h: number, w: number, withUp: boolean): number {
  const skips = skipValues(cfg, h, w);
  return batch * F32 * ARENA * ((withUp ? 2 : 1) * skips + workValues(cfg, h, w));
}

/**
 * The VAE decoder at full size: the last upsampler's output (the previous block's channels) and the
 * last up block's resnet tensors (GroupNorm, SiLU, conv, residual), all H × W.
 */
function vaeActivations(cfg: VaeConfig, batch: number, height: number, width: number): number {
  const last = cfg.blockOutChannels[0]!;
  const before = cfg.blockOutChannels[1] ?? last;
  return batch * F32 * ARENA * height * width * (3 * before + 3 * last);
}

/** A ControlNet's conditioning embedding runs at image size: the control image and conv_in's outputs. */
function conditioningActivations(cfg: ControlNetConfig, batch: number, height: number, width: number): number {
  const first = cfg.conditioningEmbeddingChannels[0] ?? 16;
  return batch * F32 * ARENA * height * width * (3 + 3 * first);
}

/** The plan for one InstantID task on a warm pipeline that holds every net (float32, CPU EP). */
export function planInstantIdMemory(x: MemoryPlanInput): MemoryPlan {
  const unet = parseUNetConfig(x.unet);
  const vae = parseVaeConfig(x.vae);
  const nets: ControlNetConfig[] = x.controlNets.map((c) => parseControlNetConfig(c));
  const scale = 2 ** (vae.blockOutChannels.length - 1);
  const h = Math.ceil(x.height / scale);
  const w = Math.ceil(x.width / scale);
  const batch = (x.cfg ? 2 : 1) * x.samples;

  const weights: MemoryCost[] = [
    { name: 'UNet weights', bytes: params(unetWeightShapes(unet) as Map<string, readonly number[]>) * F32, lower: 'use a smaller checkpoint', kind: 'model' as const },
    { name: 'text encoder weights', bytes: (params(clipStateShapes(x.textEncoder, false)) + params(clipStateShapes(x.textEncoder2, true))) * F32, lower: 'use a smaller checkpoint', kind: 'model' as const },
    { name: 'VAE weights', bytes: params(vaeStateShapes(vae)) * F32, lower: 'use a smaller checkpoint', kind: 'model' as const },
    ...nets.map((c, k) => ({
      name: k === 0 ? 'IdentityNet weights' : `ControlNet ${k} weights`,
      bytes: params(controlNetWeightShapes(c) as Map<string, readonly number[]>) * F32,
      lower: k === 0 ? 'use a smaller IdentityNet' : 'use fewer ControlNets',
      kind: 'model' as const,
    })),
  ];
  if (x.ipAdapter) weights.push({ name: 'ip-adapter weights', bytes: (x.ipAdapter.bytes / x.ipAdapter.elementBytes) * F32, lower: 'use a smaller ip-adapter', kind: 'model' });
  if (x.loraFactorValues) weights.push({ name: 'LoRA factors', bytes: x.loraFactorValues * F32 * 2, lower: 'use fewer LoRAs', kind: 'model' });

  const lowerSize = `lower width × height (${x.width}×${x.height}) or samples (${x.samples})`;
  const denoise: MemoryCost[] = [
    { name: `UNet activations (batch ${batch} at ${x.width}×${x.height})`, bytes: unetActivations(unet, batch, h, w, true), lower: lowerSize, kind: 'task' },
    ...nets.map((c, k) => ({
      name: `${k === 0 ? 'IdentityNet' : `ControlNet ${k}`} activations and residuals`,
      // its conditioning embedding at image size, its own down path, and its residuals held on the
      // host and fed to the UNet
      bytes: conditioningActivations(c, batch, x.height, x.width) + unetActivations(c, batch, h, w, false) + 2 * batch * F32 * skipValues(c, h, w),
      lower: k === 0 ? lowerSize : `${lowerSize}, or use fewer ControlNets`,
      kind: 'task' as const,
    })),
  ];
  const decode: MemoryCost[] = [
    { name: `VAE decode (${x.samples} × ${x.width}×${x.height})`, bytes: vaeActivations(vae, x.samples, x.height, x.width), lower: lowerSize, kind: 'task' },
  ];
  const sum = (c: readonly MemoryCost[]): number => c.reduce((n, e) => n + e.bytes, 0);
  // ORT's CPU arena keeps each session's peak after its run, so the stages add up rather than overlap
  const costs = [{ name: 'runtime (Node, ONNX Runtime)', bytes: RUNTIME_BYTES, lower: '', kind: 'model' as const }, ...weights, ...denoise, ...decode].sort((a, b) => b.bytes - a.bytes);
  return { peakBytes: sum(costs), costs };
}

/** Parses LIKENESS_MEMORY_LIMIT (bytes or K/M/G/T); default: the host's memory less max(1.5 GiB, 8 %). */
export function memoryLimit(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LIKENESS_MEMORY_LIMIT;
  if (raw !== undefined && raw.trim() !== '') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$/i.exec(raw);
    if (!m) throw new EngineError('bad_config', `LIKENESS_MEMORY_LIMIT=${JSON.stringify(raw)} is not a size: give bytes, or a number with K, M, G or T (e.g. 22G)`);
    const power = { B: 0, K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? 'B')[0]!.toUpperCase() as 'B'] ?? 0;
    return Math.floor(Number(m[1]) * 1024 ** power);
  }
  const total = totalmem();
  return total - Math.max(1.5 * 2 ** 30, 0.08 * total);
}

const gb = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GB`;

/**
 * Throws EngineError('memory_limit') when the plan does not fit `limit`, naming the biggest cost
 * and what to lower. `inUse` is memory the process already holds outside the plan (other warm
 * pipelines). Returns the plan's headroom otherwise.
 */
export function checkMemoryPlan(plan: MemoryPlan, limit: number, inUse = 0): number {
  const need = plan.peakBytes + inUse;
  if (need <= limit) return limit - need;
  // When the models alone fit, the task's size is what to lower; otherwise the biggest model
  const models = plan.costs.filter((c) => c.kind === 'model').reduce((n, c) => n + c.bytes, 0) + inUse;
  const lever = plan.costs.find((c) => c.lower !== '' && (models <= limit ? c.kind === 'task' : c.kind === 'model')) ?? plan.costs[0]!;
  const top = plan.costs.slice(0, 3).map((c) => `${c.name} ${gb(c.bytes)}`).join(', ');
  throw new EngineError('memory_limit',
    `this task needs about ${gb(need)} of memory, over the limit of ${gb(limit)} (LIKENESS_MEMORY_LIMIT; host free now ${gb(freemem())}). ` +
    `Biggest costs: ${top}${inUse > 0 ? `, other loaded models ${gb(inUse)}` : ''}. The biggest you can change is ${lever.name} (${gb(lever.bytes)}): ${lever.lower}.`);
}

/** Where an InstantID task's models are, and what it asks for (what planInstantIdTask reads). */
export interface InstantIdTaskFiles {
  model: string;
  identityNet: string;
  ipAdapter: string;
  controlNets: readonly string[];
}

/** The plan for a task, its configs read from the files (no weights are loaded). */
export function planInstantIdTask(
  files: InstantIdTaskFiles,
  task: { width: number; height: number; samples: number; guidanceScale: number; loras?: readonly AppliedLora[] },
): MemoryPlan {
  const model = openSdxlModel(files.model);
  let configs: Pick<MemoryPlanInput, 'unet' | 'vae' | 'textEncoder' | 'textEncoder2'>;
  try {
    configs = { unet: model.unet.config, vae: model.vae.config, textEncoder: model.text_encoder.config, textEncoder2: model.text_encoder_2.config };
  } finally {
    model.close();
  }
  const ip = openWeights(files.ipAdapter);
  let elementBytes = 4;
  try {
    const first = ip.names()[0];
    if (first !== undefined) elementBytes = DTYPE_SIZE[ip.info(first).dtype] ?? 4;
  } finally {
    ip.close();
  }
  const loraFactorValues = (task.loras ?? []).filter((l) => l.scale !== 0).reduce((n, l) =>
    n + Object.values(l.lora.deltas).flat().reduce((m, d) => m + d.rank * (d.targetShape[0]! + d.targetShape.slice(1).reduce((a, b) => a * b, 1)), 0), 0);
  return planInstantIdMemory({
    ...configs,
    controlNets: [files.identityNet, ...files.controlNets].map((p) => findComponent(p, 'controlnet').config),
    ipAdapter: { bytes: statSync(files.ipAdapter).size, elementBytes },
    width: task.width, height: task.height, samples: task.samples, cfg: task.guidanceScale > 1, loraFactorValues,
  });
}

const DTYPE_SIZE: Partial<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
