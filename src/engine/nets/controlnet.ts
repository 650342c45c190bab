// diffusers ControlNetModel as a graph: the UNet's encoder (time and text_time embeddings, conv_in,
// down blocks, mid block) with the conditioning image's embedding added after conv_in, then a 1×1
// "zero" conv per skip and for the mid output, times the runtime conditioning_scale. Optionally
// the InstantID `_full` pipeline's face-region mask multiplies the residuals (IdentityNet only).
// controlnetForward works on any GraphBuilder, so a UNet + ControlNets graph can reuse it.
import { GraphBuilder, type AttentionMode, type ModelDef, type Tensor } from '../onnx/index.js';
import type { FloatDType } from '../onnx/dtype.js';
import { conditioningEmbedding, resizeLike } from './sdxl-blocks.js';
import { WeightScope, type TensorSource } from './sdxl-weights.js';
import { encoder, skipCount, type BlockEnv } from './unet-blocks.js';
import type { ControlNetConfig } from './unet-config.js';

export const CONTROLNET_IO = {
  sample: 'sample',
  timestep: 'timestep',
  context: 'encoder_hidden_states',
  cond: 'controlnet_cond',
  textEmbeds: 'text_embeds',
  timeIds: 'time_ids',
  scale: 'conditioning_scale',
  mask: 'control_mask',
  down: (i: number) => `down_block_res_sample_${i}`,
  mid: 'mid_block_res_sample',
} as const;

/**
 * Downscale of the face-region mask per down residual, as InstantID's `_full` pipeline hard-codes it
 * for SDXL (mask j multiplies residual j; residuals past the list stay unmasked); the mid residual
 * takes the last (/32) map, broadcast where its size differs (a 1×1 map on small latents).
 */
export const CONTROL_MASK_SCALES = [8, 8, 8, 16, 16, 16, 32, 32, 32] as const;

export interface ControlNetInputs {
  sample: Tensor; // [B, in, h, w]
  timestep: Tensor; // [T]
  context: Tensor; // [B, S, Cc]: text for ordinary ControlNets, the face tokens for IdentityNet
  cond: Tensor; // [B, 3, 8h, 8w] in [0, 1]
  textEmbeds?: Tensor;
  timeIds?: Tensor;
  scale: Tensor; // [1]
  /** [Bm, 1, H, W] face-region mask in image pixels. */
  mask?: Tensor;
  /** diffusers guess_mode: residual i is also scaled by logspace(−1, 0, n + 1)[i] (the mid by 1). */
  guessMode?: boolean;
}

/** torch.logspace(-1, 0, n) in float32. */
function logspace(n: number): number[] {
  const f = Math.fround;
  const step = f(1 / (n - 1));
  return Array.from({ length: n }, (_, i) => f(10 ** f(i < n / 2 ? -1 + step * i : -step * (n - 1 - i))));
}

/** ControlNetConditioningEmbedding: conv_in, (conv, strided conv)×(n−1) with SiLU, conv_out. */
function conditioningImageEmbedding(g: GraphBuilder, w: WeightScope, cond: Tensor, channels: readonly number[]): Tensor {
  return g.scope('controlnet_cond_embedding', () => {
    const conv = (name: string, x: Tensor, stride = 1): Tensor => g.conv2d(x, w.get(`${name}.weight`), w.maybe(`${name}.bias`), { stride, padding: 1 });
    let h = g.silu(conv('conv_in', cond)); // [B, c0, 8h, 8w]
    for (let i = 0; i < channels.length - 1; i++) {
      h = g.silu(conv(`blocks.${2 * i}`, h));
      h = g.silu(conv(`blocks.${2 * i + 1}`, h, 2)); // [B, c(i+1), …/2, …/2]
    }
    return conv('conv_out', h); // [B, C0, h, w]
  });
}

/** ControlNetModel.forward → residuals (already × conditioning_scale, and masked if a mask is given). */
export function controlnetForward(g: GraphBuilder, w: WeightScope, cfg: ControlNetConfig, x: ControlNetInputs): { down: Tensor[]; mid: Tensor } {
  const temb = conditioningEmbedding(g, w, cfg.embedding, x);
  const env: BlockEnv = {
    g, temb, ctx: { text: x.context }, groups: cfg.normGroups, eps: cfg.normEps, useLinearProjection: cfg.useLinearProjection,
  };
  const condRgb = cfg.bgr ? g.gather(x.cond, [2, 1, 0], 1) : x.cond;
  const condEmb = conditioningImageEmbedding(g, w.at('controlnet_cond_embedding'), condRgb, cfg.conditioningEmbeddingChannels);
  const { mid, skips } = encoder(env, w, x.sample, cfg, (h) => g.add(h, condEmb));
  if (skips.length !== skipCount(cfg)) throw new Error('encoder skip count mismatch');

  const zeroConv = (name: string, t: Tensor): Tensor => g.conv2d(t, w.get(`${name}.weight`), w.maybe(`${name}.bias`));
  const guess = x.guessMode && !cfg.globalPoolConditions ? logspace(skips.length + 1) : undefined;
  const finish = (t: Tensor, i: number): Tensor => {
    let r = g.mul(guess ? g.mul(t, guess[i]!) : t, x.scale);
    if (cfg.globalPoolConditions) r = g.reduceMean(r, [2, 3], true);
    return r;
  };
  let down = skips.map((s, i) => finish(zeroConv(`controlnet_down_blocks.${i}`, s), i)); // [B, Ci, hi, wi]
  let midOut = finish(zeroConv('controlnet_mid_block', mid), skips.length);
  if (x.mask) {
    const mask = x.mask;
    const masks = new Map<number, Tensor>();
    const maskAt = (s: number): Tensor => {
      let m = masks.get(s);
      if (!m) {
        const size = g.div(g.slice(g.shapeOf(mask), [2], [4]), g.ints([s, s])); // (H // s, W // s)
        m = resizeLike(g, mask, size, 'bilinear', [mask.shape[0]!, 1, '?', '?']);
        masks.set(s, m);
      }
      return m;
    };
    down = down.map((r, i) => (i < CONTROL_MASK_SCALES.length ? g.mul(r, maskAt(CONTROL_MASK_SCALES[i]!)) : r));
    midOut = g.mul(midOut, maskAt(CONTROL_MASK_SCALES[CONTROL_MASK_SCALES.length - 1]));
  }
  return { down, mid: midOut };
}

export interface ControlNetGraphOptions {
  dtype?: FloatDType;
  /** How attention is written (GraphBuilder's option); 'plain' unless asked. */
  attention?: AttentionMode;
  /** Adds the control_mask input [Bm, 1, H, W] (the `_full` pipeline's face region, IdentityNet only). */
  mask?: boolean;
  /** diffusers guess_mode (a per-residual ramp; the pipelines' default is off). */
  guessMode?: boolean;
  staticDims?: { batch?: number; height?: number; width?: number; sequence?: number };
}

/** Declares the ControlNet's inputs (names in CONTROLNET_IO). */
export function declareControlNetInputs(g: GraphBuilder, cfg: ControlNetConfig, options: ControlNetGraphOptions = {}): ControlNetInputs {
  const s = options.staticDims ?? {};
  const B = s.batch ?? 'B';
  const h = s.height ?? 'H';
  const w = s.width ?? 'W';
  const factor = 2 ** (cfg.conditioningEmbeddingChannels.length - 1);
  const cross = cfg.down.find((b) => b.type === 'CrossAttnDownBlock2D')?.crossAttentionDim ?? cfg.mid?.crossAttentionDim ?? 2048;
  const x: ControlNetInputs = {
    sample: g.input(CONTROLNET_IO.sample, [B, cfg.inChannels, h, w]),
    timestep: g.input(CONTROLNET_IO.timestep, ['T'], 'float32'),
    context: g.input(CONTROLNET_IO.context, [B, s.sequence ?? 'S', cross]),
    cond: g.input(CONTROLNET_IO.cond, [B, cfg.conditioningChannels, typeof h === 'number' ? h * factor : 'CH', typeof w === 'number' ? w * factor : 'CW']),
    scale: g.input(CONTROLNET_IO.scale, [1]),
  };
  if (cfg.embedding.textTime) {
    x.textEmbeds = g.input(CONTROLNET_IO.textEmbeds, [B, 'P']);
    x.timeIds = g.input(CONTROLNET_IO.timeIds, [B, 'N'], 'float32');
  }
  if (options.mask) x.mask = g.input(CONTROLNET_IO.mask, ['Bm', 1, 'MH', 'MW']);
  if (options.guessMode) x.guessMode = true;
  return x;
}

/** The whole ControlNet as a model: outputs down_block_res_sample_0..N-1 and mid_block_res_sample. */
export function buildControlNetGraph(weights: TensorSource, cfg: ControlNetConfig, options: ControlNetGraphOptions = {}): ModelDef {
  const g = new GraphBuilder({ name: 'controlnet', dtype: options.dtype ?? 'float32', keepIoFloat32: true, attention: options.attention ?? 'plain' });
  const x = declareControlNetInputs(g, cfg, options);
  const r = controlnetForward(g, new WeightScope(g, weights), cfg, x);
  r.down.forEach((t, i) => g.output(t, CONTROLNET_IO.down(i)));
  g.output(r.mid, CONTROLNET_IO.mid);
  return g.build();
}
