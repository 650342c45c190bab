// InstantID's Resampler (ip_adapter/resampler.py, a perceiver resampler): the 512-d face embedding
// → num_queries image prompt tokens of the UNet's cross-attention width. Its config is read from
// ip-adapter.bin's `image_proj.*` shapes; only the split of the attention width into heads is not
// in the weights (InstantID uses dim_head 64, the default here).
import { EngineError } from '../errors.js';
import { GraphBuilder, type ModelDef, type RunOptions, type Tensor } from '../onnx/index.js';
import { compileAndOpen, outputF32, weightsHashOf, type CompiledNet, type F32, type NetLoadOptions } from './net-session.js';
import { WeightScope, openSources, prefixedSource, type TensorSource } from './sdxl-weights.js';

export interface ResamplerConfig {
  dim: number;
  depth: number;
  dimHead: number;
  heads: number;
  numQueries: number;
  embeddingDim: number;
  outputDim: number;
  ffMult: number;
}

/** Reads the config from the weights (keys without the `image_proj.` prefix); heads from dimHead (64) unless given. */
export function inferResamplerConfig(w: TensorSource, given: { heads?: number; dimHead?: number } = {}): ResamplerConfig {
  const shape = (name: string): number[] => {
    if (!w.has(name)) throw new EngineError('bad_model_files', `the Resampler weights have no ${name}: not an InstantID image_proj`);
    return w.info(name).shape;
  };
  const [, numQueries, dim] = shape('latents') as [number, number, number];
  const [outputDim] = shape('proj_out.weight') as [number];
  const [, embeddingDim] = shape('proj_in.weight') as [number, number];
  let depth = 0;
  while (w.has(`layers.${depth}.0.to_q.weight`)) depth++;
  if (depth === 0) throw new EngineError('bad_model_files', 'the Resampler weights have no layers.0.0.to_q.weight');
  const [inner] = shape('layers.0.0.to_q.weight') as [number];
  const [ffInner] = shape('layers.0.1.1.weight') as [number];
  const dimHead = given.dimHead ?? (given.heads ? inner / given.heads : 64);
  const heads = given.heads ?? inner / dimHead;
  if (!Number.isInteger(heads) || heads * dimHead !== inner) {
    throw new EngineError('bad_model_config', `the Resampler's attention width ${inner} does not split into heads of ${dimHead}: give heads / dimHead`);
  }
  return { dim, depth, dimHead, heads, numQueries, embeddingDim, outputDim, ffMult: ffInner / dim };
}

/** PerceiverAttention: the latents attend to concat(norm1(x), norm2(latents)). */
function perceiverAttention(g: GraphBuilder, w: WeightScope, x: Tensor, lat: Tensor, cfg: ResamplerConfig): Tensor {
  const xn = g.layerNorm(x, w.get('norm1.weight'), w.get('norm1.bias')); // [B, N, D]
  const ln = g.layerNorm(lat, w.get('norm2.weight'), w.get('norm2.bias')); // [B, Q, D]
  const q = g.linear(ln, w.get('to_q.weight')); // [B, Q, inner]
  const kv = g.linear(g.concat([xn, ln], 1), w.get('to_kv.weight')); // [B, N + Q, 2·inner]
  const [k, v] = g.split(kv, 2, -1) as [Tensor, Tensor];
  // (q·d^-¼)(k·d^-¼)ᵀ = q·kᵀ / √d
  const o = g.attention(q, k, v, { heads: cfg.heads, scale: 1 / Math.sqrt(cfg.dimHead) }); // [B, Q, inner]
  return g.linear(o, w.get('to_out.weight'));
}

/** FeedForward: LayerNorm → Linear → GELU → Linear (no biases). */
function feedForward(g: GraphBuilder, w: WeightScope, x: Tensor): Tensor {
  const h = g.gelu(g.linear(g.layerNorm(x, w.get('0.weight'), w.get('0.bias')), w.get('1.weight')));
  return g.linear(h, w.get('3.weight'));
}

/** Resampler.forward: image_embeds [B, N, E] → [B, Q, outputDim]. */
export function resamplerForward(g: GraphBuilder, w: WeightScope, cfg: ResamplerConfig, x: Tensor): Tensor {
  const batch = g.slice(g.shapeOf(x), [0], [1]);
  const latents = w.get('latents', [1, cfg.numQueries, cfg.dim]);
  let lat = g.op('Expand', [latents, g.concat([batch, g.ints([1, 1])], 0)], [{ dtype: latents.dtype, shape: [x.shape[0]!, cfg.numQueries, cfg.dim] }])[0]!; // [B, Q, D]
  const h = g.linear(x, w.get('proj_in.weight'), w.get('proj_in.bias')); // [B, N, D]
  for (let i = 0; i < cfg.depth; i++) {
    g.scope(`layers.${i}`, () => {
      lat = g.add(perceiverAttention(g, w.at(`layers.${i}.0`), h, lat, cfg), lat);
      lat = g.add(feedForward(g, w.at(`layers.${i}.1`), lat), lat);
    });
  }
  const y = g.linear(lat, w.get('proj_out.weight'), w.get('proj_out.bias')); // [B, Q, outputDim]
  return g.layerNorm(y, w.get('norm_out.weight'), w.get('norm_out.bias'));
}

export const RESAMPLER_IO = { input: 'image_embeds', output: 'image_prompt_tokens' } as const;

export function buildResamplerGraph(weights: TensorSource, cfg: ResamplerConfig, options: { dtype?: 'float32' | 'float16' } = {}): ModelDef {
  const g = new GraphBuilder({ name: 'resampler', dtype: options.dtype ?? 'float32', keepIoFloat32: true });
  const x = g.input(RESAMPLER_IO.input, ['B', 'N', cfg.embeddingDim]);
  g.output(resamplerForward(g, new WeightScope(g, weights, '', 'image_proj.'), cfg, x), RESAMPLER_IO.output);
  return g.build();
}

export interface ResamplerRunner {
  readonly config: ResamplerConfig;
  readonly compiled: CompiledNet;
  /** [B, N, E] (or [B, E]: one embedding per sample) → [B, Q, outputDim]. */
  run(imageEmbeds: F32, options?: RunOptions): Promise<F32>;
  /** Resampler(0): the tokens of the unconditional branch, computed once. */
  zeroTokens(): Promise<F32>;
  dispose(): Promise<void>;
}

export interface ResamplerLoadOptions extends NetLoadOptions {
  heads?: number;
  dimHead?: number;
}

/** From `image_proj.*`-less weights (a prefixedSource) plus a cache identity. */
export async function createResamplerRunner(src: { weights: TensorSource; weightsHash: string }, options: ResamplerLoadOptions): Promise<ResamplerRunner> {
  const given = { ...(options.heads ? { heads: options.heads } : {}), ...(options.dimHead ? { dimHead: options.dimHead } : {}) };
  const config = inferResamplerConfig(src.weights, given);
  const compiled = await compileAndOpen(options, { net: 'resampler', weightsHash: src.weightsHash, config }, () => buildResamplerGraph(src.weights, config, options.dtype ? { dtype: options.dtype } : {}));
  let zero: Promise<F32> | undefined;
  const run = async (e: F32, runOptions?: RunOptions): Promise<F32> => {
    const x: F32 = e.dims.length === 2 ? { dtype: 'float32', dims: [e.dims[0]!, 1, e.dims[1]!], data: e.data } : e;
    const out = await compiled.session.run({ [RESAMPLER_IO.input]: x }, runOptions);
    return outputF32(out, RESAMPLER_IO.output);
  };
  return {
    config,
    compiled,
    run,
    zeroTokens: () => (zero ??= run({ dtype: 'float32', dims: [1, 1, config.embeddingDim], data: new Float32Array(config.embeddingDim) })),
    dispose: () => compiled.session.dispose(),
  };
}

/** The Resampler of an InstantID ip-adapter.bin (or a safetensors with `image_proj.` keys). */
export async function loadResampler(ipAdapterPath: string, options: ResamplerLoadOptions): Promise<ResamplerRunner> {
  const opened = openSources([ipAdapterPath]);
  try {
    const weights = prefixedSource(opened.source, 'image_proj.');
    return await createResamplerRunner({ weights, weightsHash: await weightsHashOf([ipAdapterPath]) }, options);
  } finally {
    opened.close();
  }
}
