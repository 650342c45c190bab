// Loading everything InstantID runs: an SDXL model (tokenizers, both text encoders, the UNet with
// ControlNet residual inputs and InstantID's IP-Adapter attention on every attn2, the VAE decoder,
// the scheduler config), the IdentityNet ControlNet (its face-region mask is applied on the host), the
// Resampler from ip-adapter.bin, and any extra ControlNets (F16 files are upcast). Each net is
// compiled once through the on-disk cache (keyed by a fingerprint of its weights) and opened.
import { existsSync, statSync } from 'node:fs';
import { EngineError } from '../errors.js';
import { findComponent } from '../formats/diffusers-component.js';
import { openSdxlModel } from '../formats/diffusers-folder.js';
import type { WeightSource } from '../formats/keymaps/source.js';
import { openWeights, type WeightsFile } from '../formats/weights.js';
import type { ExecutionProvider, FloatDType } from '../onnx/index.js';
import { loadClipTextEncoder, type ClipTextEncoder } from '../nets/clip-text.js';
import { createControlNetRunner, type ControlNetRunner } from '../nets/controlnet-runner.js';
import { weightsHashOf } from '../nets/net-session.js';
import { createResamplerRunner, type ResamplerRunner } from '../nets/resampler.js';
import { float32Source, prefixedSource, type TensorSource } from '../nets/sdxl-weights.js';
import { createUnetRunner, ipAdapterSource } from '../nets/unet-runner.js';
import { loadVaeDecoder, parseVaeConfig, vaeScaleFactor, type VaeConfig } from '../nets/vae.js';
import type { ClipTokenizer } from '../text/clip-tokenizer.js';
import { defaultExecutionProvider } from '../onnx/provider.js';
import { SDXL_BASE_SCHEDULER, componentHash, forceZerosFlag, loadTokenizers, type SdxlParts } from './sdxl-components.js';
import { singleFileControlNetConfig } from './instantid-controlnet-file.js';

/** One network's files: its config dict, its weights (diffusers / transformers names) and a cache identity. */
export interface NetFiles {
  config: Record<string, unknown>;
  weights: WeightSource;
  weightsHash: string;
}

/** Everything an InstantID pipeline is built from. The weight sources need to stay open only while loading. */
export interface InstantIdParts {
  unet: NetFiles;
  vae: NetFiles;
  textEncoder: NetFiles;
  textEncoder2: NetFiles;
  tokenizer1: ClipTokenizer;
  tokenizer2: ClipTokenizer;
  /** scheduler_config.json (the default scheduler and the config other schedulers are made from). */
  schedulerConfig: Record<string, unknown>;
  /** model_index.json's force_zeros_for_empty_prompt (standard prompt mode only); default true. */
  forceZerosForEmptyPrompt?: boolean;
  /** Net 0: fed the keypoint image and the face tokens, masked by the face region. */
  identityNet: NetFiles;
  /** ip-adapter.bin (or a safetensors copy): `image_proj.*` (Resampler) and `ip_adapter.*` (to_k_ip / to_v_ip). */
  ipAdapter: { weights: WeightSource; weightsHash: string };
  /** Nets 1…: fed their own control image and the text context. */
  controlNets?: NetFiles[];
  /** The Resampler's head split, which its weights cannot tell (InstantID: dim_head 64). */
  resampler?: { heads?: number; dimHead?: number };
}

export interface InstantIdLoadOptions {
  /** Compiled models are kept here (e.g. $LIKENESS_HOME/cache/onnx). */
  cacheDir: string;
  /** float32 (default; the CPU choice) or float16 for GPU providers (the VAE follows its force_upcast). */
  dtype?: FloatDType;
  executionProvider?: ExecutionProvider;
  /** ONNX Runtime intra-op threads per session. */
  threads?: number;
  /**
   * Build the UNet and both text encoders with run-time LoRA slots (engine/lora/runtime.ts): the
   * pipeline's setLoras() then switches LoRA sets and scales without a rebuild.
   */
  loraSlots?: boolean;
}

/** The opened nets and what the pipeline needs besides them. */
export interface InstantIdNets extends Pick<SdxlParts, 'tokenizer1' | 'tokenizer2' | 'encoder1' | 'encoder2' | 'unet' | 'vae' | 'forceZerosForEmptyPrompt'> {
  vaeConfig: VaeConfig;
  vaeScale: number;
  resampler: ResamplerRunner;
  /** [IdentityNet, …extra ControlNets]. */
  controlNets: ControlNetRunner[];
  schedulerConfig: Record<string, unknown>;
}

/** For float32 graphs, every tensor read as float32 (F16 / BF16 files upcast exactly). */
function asFloat32(w: WeightSource, dtype: FloatDType): TensorSource {
  return dtype === 'float32' ? float32Source(w) : w;
}

/** Compiles (or finds in the cache) and opens every net. Disposes what it opened if one fails. */
export async function loadInstantIdNets(parts: InstantIdParts, options: InstantIdLoadOptions): Promise<InstantIdNets> {
  const dtype = options.dtype ?? 'float32';
  const executionProvider = options.executionProvider ?? defaultExecutionProvider();
  const threads = options.threads !== undefined ? { intraOpThreads: options.threads } : {};
  const net = { cacheDir: options.cacheDir, dtype, session: { executionProvider, ...threads } };
  const opened: { dispose(): Promise<void> }[] = [];
  const keep = <T extends { dispose(): Promise<void> }>(x: T): T => {
    opened.push(x);
    return x;
  };
  try {
    const encoder = (p: NetFiles, withProjection: boolean): Promise<ClipTextEncoder> => loadClipTextEncoder(p.weights, p.config, {
      cacheDir: options.cacheDir, weightsHash: p.weightsHash, dtype, executionProvider, withProjection,
      outputs: withProjection ? ['penultimate', 'text_embeds'] : ['penultimate'], ...threads,
      ...(options.loraSlots ? { loraSlots: true } : {}),
    });
    const encoder1 = keep(await encoder(parts.textEncoder, false));
    const encoder2 = keep(await encoder(parts.textEncoder2, true));
    const ip = parts.ipAdapter;
    const resampler = keep(await createResamplerRunner(
      { weights: prefixedSource(asFloat32(ip.weights, dtype), 'image_proj.'), weightsHash: ip.weightsHash },
      { ...net, ...(parts.resampler?.heads ? { heads: parts.resampler.heads } : {}), ...(parts.resampler?.dimHead ? { dimHead: parts.resampler.dimHead } : {}) },
    ));
    const unet = keep(await createUnetRunner({
      config: parts.unet.config,
      weights: asFloat32(parts.unet.weights, dtype),
      weightsHash: parts.unet.weightsHash,
      ipAdapter: { weights: ipAdapterSource(asFloat32(ip.weights, dtype)), weightsHash: ip.weightsHash, numTokens: resampler.config.numQueries, regionMask: true },
    }, { ...net, controlResiduals: true, ...(options.loraSlots ? { loraSlots: true } : {}) }));
    const controlNets: ControlNetRunner[] = [];
    for (const [k, p] of [parts.identityNet, ...(parts.controlNets ?? [])].entries()) {
      const runner = keep(await createControlNetRunner({ config: p.config, weights: asFloat32(p.weights, dtype), weightsHash: p.weightsHash }, net));
      if (k === 0 && runner.config.globalPoolConditions) {
        throw new EngineError('unsupported_model', 'the IdentityNet has global_pool_conditions (guess mode), which InstantID does not use');
      }
      controlNets.push(runner);
    }
    const vaeConfig = parseVaeConfig(parts.vae.config);
    const vae = keep(await loadVaeDecoder({ config: parts.vae.config, weights: parts.vae.weights }, {
      cache: { dir: options.cacheDir, weightsHash: parts.vae.weightsHash }, dtype, executionProvider, ...threads,
    }));
    return {
      tokenizer1: parts.tokenizer1, tokenizer2: parts.tokenizer2, encoder1, encoder2, unet, vae, vaeConfig,
      vaeScale: vaeScaleFactor(vaeConfig), resampler, controlNets,
      schedulerConfig: parts.schedulerConfig, forceZerosForEmptyPrompt: parts.forceZerosForEmptyPrompt ?? true,
    };
  } catch (err) {
    await Promise.all(opened.map((o) => o.dispose().catch(() => undefined)));
    throw err;
  }
}

export async function disposeNets(nets: InstantIdNets): Promise<void> {
  await Promise.all([nets.encoder1, nets.encoder2, nets.unet, nets.vae, nets.resampler, ...nets.controlNets].map((n) => n.dispose()));
}

// ---- from files on disk ----

/** Where the parts live: an SDXL model, the IdentityNet folder, ip-adapter.bin, and extra ControlNets (folders or single files). */
export interface InstantIdFiles {
  /** A diffusers SDXL folder or a single-file checkpoint. */
  model: string;
  /** Folder with tokenizer/ and tokenizer_2/, for checkpoints that carry none. */
  tokenizerDir?: string;
  /** The IdentityNet (InstantX/InstantID ControlNetModel folder). */
  identityNet: string;
  ipAdapter: string;
  controlNets?: string[];
  resampler?: { heads?: number; dimHead?: number };
}

/** Opens every file; close() releases them (after loadInstantIdNets has compiled the nets). */
export async function openInstantIdParts(files: InstantIdFiles): Promise<{ parts: InstantIdParts; close(): void }> {
  const model = openSdxlModel(files.model);
  const opened: WeightsFile[] = [];
  const close = (): void => {
    model.close();
    for (const f of opened) f.close();
  };
  try {
    const controlnet = async (path: string): Promise<NetFiles> => {
      if (existsSync(path) && !statSync(path).isDirectory()) {
        const w = openWeights(path);
        opened.push(w);
        return { config: singleFileControlNetConfig(path, w).config, weights: w, weightsHash: await weightsHashOf([path]) };
      }
      const found = findComponent(path, 'controlnet');
      if (found.weights.length !== 1) throw new EngineError('unsupported_model', `${found.dir}: sharded ControlNet weights are not supported`);
      const w = openWeights(found.weights[0]!);
      opened.push(w);
      return { config: found.config, weights: w, weightsHash: await weightsHashOf(found.weights) };
    };
    const { tokenizer1, tokenizer2 } = loadTokenizers(model, files.tokenizerDir);
    if (!existsSync(files.ipAdapter)) {
      throw new EngineError('model_missing', `${files.ipAdapter} does not exist: InstantID needs ip-adapter.bin (Resampler and IP-Adapter weights) from the InstantX/InstantID repository`);
    }
    const ip = openWeights(files.ipAdapter);
    opened.push(ip);
    const part = async (name: 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2'): Promise<NetFiles> => ({
      config: model[name].config, weights: model[name].weights, weightsHash: await componentHash(model, name),
    });
    const parts: InstantIdParts = {
      unet: await part('unet'),
      vae: await part('vae'),
      textEncoder: await part('text_encoder'),
      textEncoder2: await part('text_encoder_2'),
      tokenizer1,
      tokenizer2,
      schedulerConfig: model.scheduler ?? SDXL_BASE_SCHEDULER,
      forceZerosForEmptyPrompt: forceZerosFlag(model),
      identityNet: await controlnet(files.identityNet),
      ipAdapter: { weights: ip, weightsHash: await weightsHashOf([files.ipAdapter]) },
      controlNets: await Promise.all((files.controlNets ?? []).map(controlnet)),
      ...(files.resampler ? { resampler: files.resampler } : {}),
    };
    return { parts, close };
  } catch (err) {
    close();
    throw err;
  }
}
