// Loading the UNet from users' files and running it: loadUnet(diffusers folder, options) or
// createUnetRunner(config + weights) compile the graph through the on-disk cache and return a
// runner whose run() takes host tensors. Optional parts (ControlNet residuals, IP-Adapter,
// region mask) are build options; what a call leaves out is fed as its neutral value.
import { EngineError } from '../errors.js';
import { findComponent } from '../formats/diffusers-component.js';
import type { RunOptions } from '../onnx/index.js';
import { attentionModeFor, compileAndOpen, f32, outputF32, timestepFeed, weightsHashOf, type CompiledNet, type F32, type NetLoadOptions } from './net-session.js';
import type { ScaledLora } from '../lora/apply.js';
import { emptyLoraFeeds, loraSlotsOf, runtimeLoraFeeds, type LoraSlot, type StackMemo } from '../lora/runtime.js';
import { openSources, prefixedSource, type TensorSource } from './sdxl-weights.js';
import { parseUNetConfig, type UNetConfig } from './unet-config.js';
import { UNET_IO, buildUnetGraph, unetResidualLayout, type UnetGraphOptions } from './unet.js';

export interface IpAdapterLoad {
  /** ip-adapter.bin (torch) or a safetensors file with the `ip_adapter.` keys. */
  path: string;
  /** Image tokens at the end of the context: 16 for InstantID. */
  numTokens?: number;
  /** Adds the region_mask input (the `_full` pipeline's face-region option). */
  regionMask?: boolean;
}

export interface UnetLoadOptions extends NetLoadOptions {
  controlResiduals?: boolean;
  ipAdapter?: IpAdapterLoad;
  staticDims?: UnetGraphOptions['staticDims'];
  variant?: 'fp16';
  /** Build with run-time LoRA branches (setLoras then changes LoRAs without a rebuild). */
  loraSlots?: boolean;
}

export interface UnetStepInputs {
  sample: F32; // [B, 4, h, w]
  /** A number or [1] broadcasts over the batch; [B] gives one per sample. */
  timestep: number | F32;
  encoderHiddenStates: F32; // [B, S, Cc] (+ numTokens image tokens with an IP-Adapter)
  textEmbeds?: F32; // [B, pooled]
  timeIds?: F32; // [B, 6]
  controlResiduals?: { down: readonly F32[]; mid: F32 };
  /** Required when the UNet was built with an IP-Adapter. */
  ipAdapterScale?: number;
  /** [Bm, 1, Hm, Wm] in image pixels; all ones when left out. */
  regionMask?: F32;
}

export interface UnetRunner {
  readonly config: UNetConfig;
  readonly compiled: CompiledNet;
  readonly hasControlResiduals: boolean;
  readonly hasIpAdapter: boolean;
  /** The run-time LoRA slots (empty unless loaded with loraSlots). */
  readonly loraSlots: ReadonlyMap<string, LoraSlot>;
  /**
   * The LoRAs later runs apply, as branches (loraSlots builds only; [] for none). Throws
   * EngineError('lora_not_runtime') for a LoRA the branches cannot carry (DoRA, convolutions).
   */
  setLoras(loras: readonly ScaledLora[]): void;
  /** noise_pred [B, out, h, w]. */
  run(inputs: UnetStepInputs, options?: RunOptions): Promise<F32>;
  dispose(): Promise<void>;
}

export interface UnetSource {
  /** config.json contents (raw diffusers dict). */
  config: unknown;
  weights: TensorSource;
  /** Identifies the weights for the compile cache. */
  weightsHash: string;
  /** Needed with an IP-Adapter: source of `{k}.to_k_ip.weight` …, and its hash. */
  ipAdapter?: { weights: TensorSource; weightsHash: string; numTokens: number; regionMask?: boolean };
}

/** Compiles (or finds in the cache) and opens a UNet from a config and weights. */
export async function createUnetRunner(src: UnetSource, options: UnetLoadOptions): Promise<UnetRunner> {
  const config = parseUNetConfig(src.config);
  const graphOptions: UnetGraphOptions = {
    dtype: options.dtype ?? 'float32',
    attention: options.attention ?? attentionModeFor(options.session?.executionProvider),
    ...(options.controlResiduals ? { controlResiduals: true } : {}),
    ...(options.staticDims ? { staticDims: options.staticDims } : {}),
    ...(options.loraSlots ? { loraSlots: true } : {}),
    ...(src.ipAdapter ? { ipAdapter: { weights: src.ipAdapter.weights, numTokens: src.ipAdapter.numTokens, regionMask: src.ipAdapter.regionMask ?? false } } : {}),
  };
  const key = {
    net: src.ipAdapter ? 'unet-ip' : 'unet',
    weightsHash: src.weightsHash + (src.ipAdapter ? `+${src.ipAdapter.weightsHash}` : ''),
    config: {
      unet: config,
      attention: graphOptions.attention,
      controlResiduals: graphOptions.controlResiduals ?? false,
      staticDims: graphOptions.staticDims ?? null,
      ...(graphOptions.loraSlots ? { loraSlots: true } : {}),
      ip: graphOptions.ipAdapter ? { numTokens: graphOptions.ipAdapter.numTokens, regionMask: graphOptions.ipAdapter.regionMask } : null,
    },
  };
  const compiled = await compileAndOpen(options, key, () => buildUnetGraph(src.weights, config, graphOptions));
  return makeRunner(config, compiled, graphOptions);
}

function makeRunner(config: UNetConfig, compiled: CompiledNet, o: UnetGraphOptions): UnetRunner {
  const layout = unetResidualLayout(config);
  const loraSlots = loraSlotsOf(compiled.session.inputs);
  let loraFeeds = emptyLoraFeeds(loraSlots);
  const stacks: StackMemo = new Map();
  return {
    config,
    compiled,
    hasControlResiduals: o.controlResiduals ?? false,
    hasIpAdapter: o.ipAdapter !== undefined,
    loraSlots,
    setLoras(loras) {
      if (loraSlots.size === 0 && loras.some((l) => l.scale !== 0 && l.deltas.length > 0)) {
        throw new EngineError('lora_not_runtime', 'this UNet was built without run-time LoRA slots (load it with loraSlots: true, or fuse the LoRAs with withLoras)');
      }
      loraFeeds = runtimeLoraFeeds(loraSlots, loras, stacks);
    },
    async run(x, runOptions) {
      const [batch, , h, w] = x.sample.dims as [number, number, number, number];
      const feeds: Record<string, F32> = {
        [UNET_IO.sample]: x.sample,
        [UNET_IO.timestep]: timestepFeed(x.timestep),
        [UNET_IO.context]: x.encoderHiddenStates,
        ...loraFeeds,
      };
      if (config.embedding.textTime) {
        if (!x.textEmbeds || !x.timeIds) throw new EngineError('bad_input', 'this UNet (text_time) needs textEmbeds and timeIds');
        feeds[UNET_IO.textEmbeds] = x.textEmbeds;
        feeds[UNET_IO.timeIds] = x.timeIds;
      }
      if (o.controlResiduals) {
        const r = x.controlResiduals;
        if (r && r.down.length !== layout.down.length) {
          throw new EngineError('bad_input', `this UNet takes ${layout.down.length} down residuals, got ${r.down.length}`);
        }
        layout.down.forEach((d, i) => {
          feeds[UNET_IO.downResidual(i)] = r?.down[i] ?? f32([batch, d.channels, ceilDiv(h, d.scale), ceilDiv(w, d.scale)]);
        });
        feeds[UNET_IO.midResidual] = r?.mid ?? f32([batch, layout.mid.channels, ceilDiv(h, layout.mid.scale), ceilDiv(w, layout.mid.scale)]);
      } else if (x.controlResiduals) {
        throw new EngineError('bad_input', 'this UNet was built without ControlNet residual inputs (load it with controlResiduals: true)');
      }
      if (o.ipAdapter) {
        if (x.ipAdapterScale === undefined) throw new EngineError('bad_input', 'this UNet has an IP-Adapter: give ipAdapterScale (0 turns it off)');
        feeds[UNET_IO.ipScale] = f32([1], Float32Array.of(x.ipAdapterScale));
        if (o.ipAdapter.regionMask) feeds[UNET_IO.regionMask] = x.regionMask ?? f32([1, 1, 1, 1], Float32Array.of(1));
        else if (x.regionMask) throw new EngineError('bad_input', 'this UNet was built without the region_mask input (ipAdapter.regionMask: true)');
      }
      const out = await compiled.session.run(feeds, runOptions);
      return outputF32(out, UNET_IO.output);
    },
    dispose: () => compiled.session.dispose(),
  };
}

function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}

/**
 * Loads the UNet of a diffusers folder (`root/unet/` or the unet folder itself), with an optional
 * InstantID ip-adapter.bin. Weight files stay open only while the graph is compiled.
 */
export async function loadUnet(path: string, options: UnetLoadOptions): Promise<UnetRunner> {
  const files = findComponent(path, 'unet', options.variant ? { variant: options.variant } : {});
  const opened = openSources(files.weights);
  const ip = options.ipAdapter ? openSources([options.ipAdapter.path]) : undefined;
  try {
    const src: UnetSource = {
      config: files.config,
      weights: opened.source,
      weightsHash: await weightsHashOf(files.weights),
    };
    if (options.ipAdapter && ip) {
      src.ipAdapter = {
        weights: ipAdapterSource(ip.source, options.ipAdapter.path),
        weightsHash: await weightsHashOf([options.ipAdapter.path]),
        numTokens: options.ipAdapter.numTokens ?? 16,
        regionMask: options.ipAdapter.regionMask ?? false,
      };
    }
    return await createUnetRunner(src, options);
  } finally {
    opened.close();
    ip?.close();
  }
}

/** The `ip_adapter.` group of an InstantID ip-adapter file (torch .bin or converted safetensors). */
export function ipAdapterSource(file: TensorSource, path = 'the ip-adapter file'): TensorSource {
  if (!file.has('ip_adapter.1.to_k_ip.weight')) {
    throw new EngineError('bad_model_files', `${path} has no ip_adapter.1.to_k_ip.weight: it is not an InstantID / IP-Adapter checkpoint`);
  }
  return prefixedSource(file, 'ip_adapter.');
}
