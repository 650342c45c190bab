// The VAE of Stable Diffusion XL: diffusers' AutoencoderKL (v0.30.3) as two ONNX graphs, written in
// the order the data flows. Names are diffusers' state-dict names; every size comes from the config.
//
//   decoder: latent [B, 4, h, w] → post_quant_conv → conv_in → mid (resnet, attn, resnet)
//            → up_blocks (resnets, ×2 nearest + conv) → norm_out, silu, conv_out → image [B, 3, 8h, 8w]
//   encoder: image [B, 3, H, W] → conv_in → down_blocks (resnets, stride-2 conv) → mid → norm_out,
//            silu, conv_out → quant_conv → moments [B, 8, H/8, W/8] → mean, logvar (clamped), std
//
// Latents go in and come out unscaled: a pipeline divides by scaling_factor before decoding and
// multiplies after encoding (diffusers does the same outside the model).
import { EngineError } from '../errors.js';
import type { ModelConfig, WeightSource } from '../formats/keymaps/source.js';
import {
  GraphBuilder, compileCached, createSession, encodeModel, openHeld,
  type AttentionMode, type ExecutionProvider, type FloatDType, type HostTensor, type ModelDef, type Session, type Tensor,
} from '../onnx/index.js';
import { VAE_NORM_EPS, parseVaeConfig, type VaeConfig } from './vae-config.js';
import { attentionModeFor } from './net-session.js';
import { defaultExecutionProvider } from '../onnx/provider.js';

export { parseVaeConfig, vaeScaleFactor, type VaeConfig } from './vae-config.js';

/** What the VAE reads its weights through (a WeightSource, a WeightsFile, or anything with these three). */
export type VaeWeights = Pick<WeightSource, 'has' | 'info' | 'readFloat32'>;

/** A VAE to load: its AutoencoderKL config dict and its weights under diffusers names. */
export interface VaeSource {
  config: ModelConfig;
  weights: VaeWeights;
}

export interface VaeGraphOptions {
  /** float16 is honoured only when the config does not ask for upcasting (force_upcast). */
  dtype?: FloatDType;
  /** How the mid-block self-attention is written (GraphBuilder's attention option): default 'plain' when
   * building, vaeAttentionMode(executionProvider) when loading. */
  attention?: AttentionMode;
}

/**
 * The mid-block attention's default form: on the CPU EP, com.microsoft.MultiHeadAttention, which runs
 * blockwise (flash-style) instead of holding the [B, 1, h·w, h·w] float32 score matrix — 1 GiB for a
 * 1024×1024 image's 128×128 latent, plus the Softmax copy (docs/benchmarks.md, Memory). GPU builds keep
 * MatMul/Softmax/MatMul unless they ask (VaeGraphOptions.attention).
 */
export function vaeAttentionMode(executionProvider: ExecutionProvider = defaultExecutionProvider()): AttentionMode {
  return attentionModeFor(executionProvider);
}

/** The graph's compute type: diffusers upcasts a force_upcast VAE to float32. */
export function vaeComputeType(config: VaeConfig, wanted: FloatDType = 'float32'): FloatDType {
  return config.forceUpcast ? 'float32' : wanted;
}

/** What every layer needs: the builder, the weights and the config. */
class VaeLayers {
  readonly g: GraphBuilder;

  constructor(private readonly weights: VaeWeights, readonly config: VaeConfig, dtype: FloatDType, name: string, attention: AttentionMode) {
    this.g = new GraphBuilder({ name, dtype, keepIoFloat32: true, attention, metadata: { net: name } });
  }

  /** A weight that must have `shape`; a [O, I] matrix may also be stored as a [O, I, 1, 1] conv kernel. */
  param(name: string, shape: number[]): Tensor {
    if (!this.weights.has(name)) throw new EngineError('missing_tensor', `VAE weights have no ${name}`);
    const found = this.weights.info(name).shape;
    const same = found.length === shape.length && found.every((d, i) => d === shape[i]);
    const squeezable = shape.length === 2 && found.length === 4 && found[0] === shape[0] && found[1] === shape[1] && found[2] === 1 && found[3] === 1;
    if (!same && !squeezable) {
      throw new EngineError('bad_weights', `VAE weight ${name} has shape [${found.join(', ')}], the config needs [${shape.join(', ')}]`);
    }
    return this.g.param(name, shape, () => this.weights.readFloat32(name));
  }

  conv(x: Tensor, name: string, cin: number, cout: number, kernel: 1 | 3): Tensor {
    const w = this.param(`${name}.weight`, [cout, cin, kernel, kernel]);
    return this.g.conv2d(x, w, this.param(`${name}.bias`, [cout]), { padding: kernel === 3 ? 1 : 0 });
  }

  groupNorm(x: Tensor, name: string, channels: number): Tensor {
    return this.g.groupNorm(x, this.param(`${name}.weight`, [channels]), this.param(`${name}.bias`, [channels]), {
      groups: this.config.normNumGroups,
      eps: VAE_NORM_EPS,
    });
  }

  linear(x: Tensor, name: string, channels: number): Tensor {
    return this.g.linear(x, this.param(`${name}.weight`, [channels, channels]), this.param(`${name}.bias`, [channels]));
  }

  /** ResnetBlock2D without a time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))). */
  resnet(x: Tensor, name: string, cin: number, cout: number): Tensor {
    const { g } = this;
    return g.scope(name, () => {
      let h = this.conv(g.silu(this.groupNorm(x, `${name}.norm1`, cin)), `${name}.conv1`, cin, cout, 3);
      h = this.conv(g.silu(this.groupNorm(h, `${name}.norm2`, cout)), `${name}.conv2`, cout, cout, 3);
      const skip = cin === cout ? x : this.conv(x, `${name}.conv_shortcut`, cin, cout, 1);
      return g.add(skip, h); // [B, cout, H, W]
    });
  }

  /** Single-head self-attention over the H·W positions, group norm first, residual added. */
  attention(x: Tensor, name: string, channels: number): Tensor {
    const { g } = this;
    return g.scope(name, () => {
      const normed = this.groupNorm(x, `${name}.group_norm`, channels);
      const seq = g.transpose(g.reshape(normed, [0, 0, -1]), [0, 2, 1]); // [B, H·W, C]
      const q = this.linear(seq, `${name}.to_q`, channels);
      const k = this.linear(seq, `${name}.to_k`, channels);
      const v = this.linear(seq, `${name}.to_v`, channels);
      const o = this.linear(g.attention(q, k, v, { heads: 1 }), `${name}.to_out.0`, channels); // [B, H·W, C]
      const back = g.reshape(g.transpose(o, [0, 2, 1]), g.shapeOf(x)); // [B, C, H, W]
      return g.add(back, x);
    });
  }

  /** UNetMidBlock2D: resnet, (attention), resnet, all at the coarsest width. */
  midBlock(x: Tensor, name: string): Tensor {
    const c = this.config.blockOutChannels.at(-1)!;
    let h = this.resnet(x, `${name}.resnets.0`, c, c);
    if (this.config.midBlockAddAttention) h = this.attention(h, `${name}.attentions.0`, c);
    return this.resnet(h, `${name}.resnets.1`, c, c);
  }
}

/** vae.decode(latent).sample: latent [B, latent_channels, h, w] → 'sample' [B, out_channels, 8h, 8w]. */
export function buildVaeDecoder(weights: VaeWeights, config: VaeConfig, options: VaeGraphOptions = {}): ModelDef {
  const L = new VaeLayers(weights, config, vaeComputeType(config, options.dtype), 'vae-decoder', options.attention ?? 'plain');
  const { g } = L;
  const boc = config.blockOutChannels;
  const levels = boc.length;
  const latent = g.input('latent', ['B', config.latentChannels, 'h', 'w']);
  let h = config.usePostQuantConv
    ? L.conv(latent, 'post_quant_conv', config.latentChannels, config.latentChannels, 1)
    : latent;
  h = L.conv(h, 'decoder.conv_in', config.latentChannels, boc[levels - 1]!, 3); // [B, C_last, h, w]
  h = L.midBlock(h, 'decoder.mid_block');
  let channels = boc[levels - 1]!;
  for (let i = 0; i < levels; i++) {
    const block = `decoder.up_blocks.${i}`;
    const out = boc[levels - 1 - i]!;
    for (let j = 0; j <= config.layersPerBlock; j++) {
      h = L.resnet(h, `${block}.resnets.${j}`, channels, out);
      channels = out;
    }
    if (i < levels - 1) {
      h = g.scope(`${block}.upsamplers.0`, () => L.conv(g.resize(h, { scale: 2, mode: 'nearest' }), `${block}.upsamplers.0.conv`, out, out, 3));
    }
  }
  h = g.silu(L.groupNorm(h, 'decoder.conv_norm_out', boc[0]!));
  h = L.conv(h, 'decoder.conv_out', boc[0]!, config.outChannels, 3); // [B, 3, 8h, 8w]
  g.output(h, 'sample');
  return g.build();
}

/**
 * vae.encode(image).latent_dist: image [B, in_channels, H, W] in [-1, 1] → 'mean', 'logvar'
 * (clamped to [-30, 20]) and 'std' = exp(logvar / 2), each [B, latent_channels, H/8, W/8].
 */
export function buildVaeEncoder(weights: VaeWeights, config: VaeConfig, options: VaeGraphOptions = {}): ModelDef {
  const L = new VaeLayers(weights, config, vaeComputeType(config, options.dtype), 'vae-encoder', options.attention ?? 'plain');
  const { g } = L;
  const boc = config.blockOutChannels;
  const levels = boc.length;
  const image = g.input('image', ['B', config.inChannels, 'H', 'W']);
  let h = L.conv(image, 'encoder.conv_in', config.inChannels, boc[0]!, 3);
  let channels = boc[0]!;
  for (let i = 0; i < levels; i++) {
    const block = `encoder.down_blocks.${i}`;
    const out = boc[i]!;
    for (let j = 0; j < config.layersPerBlock; j++) {
      h = L.resnet(h, `${block}.resnets.${j}`, channels, out);
      channels = out;
    }
    if (i < levels - 1) {
      // Downsample2D with padding 0: pad right and bottom by one, then a stride-2 3×3 conv.
      const name = `${block}.downsamplers.0.conv`;
      const w = L.param(`${name}.weight`, [out, out, 3, 3]);
      h = g.conv2d(h, w, L.param(`${name}.bias`, [out]), { stride: 2, padding: [0, 0, 1, 1] }); // [B, C, H/2, W/2]
    }
  }
  h = L.midBlock(h, 'encoder.mid_block');
  h = g.silu(L.groupNorm(h, 'encoder.conv_norm_out', channels));
  const twice = 2 * config.latentChannels;
  let moments = L.conv(h, 'encoder.conv_out', channels, twice, 3); // [B, 2·latent, H/8, W/8]
  if (config.useQuantConv) moments = L.conv(moments, 'quant_conv', twice, twice, 1);
  // DiagonalGaussianDistribution: chunk along channels, clamp logvar, std = exp(logvar / 2).
  const [mean, rawLogvar] = g.split(moments, 2, 1) as [Tensor, Tensor];
  const logvar = g.op('Clip', [rawLogvar, g.constant(-30), g.constant(20)], [{ dtype: rawLogvar.dtype, shape: rawLogvar.shape }])[0]!;
  g.output(mean, 'mean');
  g.output(logvar, 'logvar');
  g.output(g.exp(g.mul(logvar, 0.5)), 'std');
  return g.build();
}

// ---- loading and running ----

export interface VaeLoadOptions extends VaeGraphOptions {
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  /** Compile once into this cache directory (keyed by weightsHash); without it the graph is built in memory. */
  cache?: { dir: string; weightsHash: string };
}

export interface VaeDecoder {
  readonly config: VaeConfig;
  /** vae.decode(latent).sample, float32 in and out; the latent is NOT divided by scaling_factor here. */
  decode(latent: HostTensor<'float32'>, options?: { signal?: AbortSignal }): Promise<HostTensor<'float32'>>;
  dispose(): Promise<void>;
}

export interface VaeLatentDist {
  mean: HostTensor<'float32'>;
  logvar: HostTensor<'float32'>;
  std: HostTensor<'float32'>;
}

export interface VaeEncoder {
  readonly config: VaeConfig;
  /** vae.encode(image).latent_dist for an image in [-1, 1]; latents = mean (or mean + std·noise) × scaling_factor. */
  encode(image: HostTensor<'float32'>, options?: { signal?: AbortSignal }): Promise<VaeLatentDist>;
  dispose(): Promise<void>;
}

/** The load options with the attention form filled in for the execution provider. */
function withAttention(options: VaeLoadOptions): VaeLoadOptions & { attention: AttentionMode } {
  return { ...options, attention: options.attention ?? vaeAttentionMode(options.executionProvider) };
}

async function openGraph(net: string, config: VaeConfig, build: () => ModelDef, options: VaeLoadOptions & { attention: AttentionMode }): Promise<Session> {
  const sessionOptions = { executionProvider: options.executionProvider ?? defaultExecutionProvider(), intraOpThreads: options.intraOpThreads ?? 1 } as const;
  if (!options.cache) return createSession(await encodeModel(build()), sessionOptions);
  // The attention form is part of the key: a graph compiled with the other form is never reused.
  const key = { net, weightsHash: options.cache.weightsHash, dtype: vaeComputeType(config, options.dtype), config: { ...config, attention: options.attention } };
  const compiled = await compileCached(options.cache.dir, key, build);
  return openHeld(compiled, (path, extra) => createSession(path, { ...sessionOptions, ...extra }));
}

function float32Output(outputs: Record<string, HostTensor>, name: string): HostTensor<'float32'> {
  const t = outputs[name];
  if (!t || t.dtype !== 'float32') throw new EngineError('ort_bad_output', `the VAE graph gave no float32 ${name}`);
  return t as HostTensor<'float32'>;
}

/** Builds (or finds in the cache) the decoder graph for a VAE component and opens a session on it. */
export async function loadVaeDecoder(vae: VaeSource, loadOptions: VaeLoadOptions = {}): Promise<VaeDecoder> {
  const config = parseVaeConfig(vae.config);
  const options = withAttention(loadOptions);
  const session = await openGraph('vae-decoder', config, () => buildVaeDecoder(vae.weights, config, options), options);
  return {
    config,
    async decode(latent, runOptions = {}) {
      const out = await session.run({ latent }, runOptions.signal ? { signal: runOptions.signal } : {});
      return float32Output(out, 'sample');
    },
    dispose: () => session.dispose(),
  };
}

/** Builds (or finds in the cache) the encoder graph for a VAE component and opens a session on it. */
export async function loadVaeEncoder(vae: VaeSource, loadOptions: VaeLoadOptions = {}): Promise<VaeEncoder> {
  const config = parseVaeConfig(vae.config);
  const options = withAttention(loadOptions);
  const session = await openGraph('vae-encoder', config, () => buildVaeEncoder(vae.weights, config, options), options);
  return {
    config,
    async encode(image, runOptions = {}) {
      const out = await session.run({ image }, runOptions.signal ? { signal: runOptions.signal } : {});
      return { mean: float32Output(out, 'mean'), logvar: float32Output(out, 'logvar'), std: float32Output(out, 'std') };
    },
    dispose: () => session.dispose(),
  };
}
