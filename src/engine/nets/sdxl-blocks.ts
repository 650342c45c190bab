// The convolutional half of the SDXL UNet family (diffusers embeddings.py, resnet.py,
// downsampling.py, upsampling.py): timestep sinusoids and embeddings, ResnetBlock2D, Downsample2D,
// Upsample2D. Written in the graph builder's vocabulary with diffusers' module names, so
// `w.at('resnets.0')` reads `…resnets.0.conv1.weight` as the checkpoint names it.
import { attr, type Attr, type GraphBuilder, type Tensor } from '../onnx/index.js';
import { isStatic as isStaticShape } from '../onnx/shape.js';
import type { EmbeddingConfig } from './unet-config.js';
import type { WeightScope } from './sdxl-weights.js';

/**
 * diffusers get_timestep_embedding frequencies, as torch computes them in float32:
 * exp(-ln(10000)·i / (half − shift)) for i < half.
 */
export function timestepFrequencies(dim: number, shift: number): Float32Array {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const lnMax = f(-Math.log(10000));
  const denom = f(half - shift);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f(Math.exp(f(f(lnMax * i) / denom)));
  return out;
}

/**
 * Timesteps: values [..] → sinusoids [.., dim], [sin | cos] or [cos | sin] with flip_sin_to_cos;
 * an odd dim gets a zero column, as diffusers pads it.
 */
export function timestepSinusoids(g: GraphBuilder, values: Tensor, dim: number, flipSinToCos: boolean, shift: number): Tensor {
  const freqs = timestepFrequencies(dim, shift);
  const args = g.mul(g.unsqueeze(values, [-1]), g.constant(freqs, { dtype: values.dtype })); // [.., half]
  const [sin, cos] = sinCos(g, args);
  let emb = g.concat(flipSinToCos ? [cos, sin] : [sin, cos], -1); // [.., 2·half]
  if (dim % 2 === 1) {
    const pads = new Array<number>(emb.rank * 2).fill(0);
    pads[pads.length - 1] = 1;
    const shape = [...emb.shape.slice(0, -1), dim];
    emb = g.op('Pad', [emb, g.ints(pads)], [{ dtype: emb.dtype, shape }])[0]!;
  }
  return emb;
}

/** `value` split into a head with `bits` significant bits and the rest (both exact in float64). */
function splitBits(value: number, bits: number): [number, number] {
  const e = Math.floor(Math.log2(Math.abs(value)));
  const step = 2 ** (e - bits + 1);
  const head = Math.round(value / step) * step;
  return [head, value - head];
}

// 2π in three float32 parts (Cody–Waite): the first two have 12 significant bits, so k·part is exact in
// float32 for every integer k below 2¹², i.e. arguments up to about 25,000 rad; the third is the rest.
const TWO_PI_PARTS = ((): [number, number, number] => {
  const [c1, rest] = splitBits(2 * Math.PI, 12);
  const [c2, rest2] = splitBits(rest, 12);
  return [Math.fround(c1), Math.fround(c2), Math.fround(rest2)];
})();

/**
 * sin and cos of a float32 tensor in correctly rounded arithmetic only (Mul, Add, Sub, Floor), not the
 * Sin/Cos ops: GPU sine and cosine are approximations (WGSL allows 2⁻¹¹ absolute error; SwiftShader is
 * off by 2e-4 over [−π, π] and the timestep sinusoids' arguments reach ~1,000 rad), and that error grows
 * through the UNet past the goldens' tolerances. The argument is reduced to r ∈ [−π, π]
 * (k = ⌊a/2π + ½⌋, r = a − k·c₁ − k·c₂ − k·c₃, the first two products exact), then h = r/2 goes through
 * Taylor polynomials to the 13th/14th power (truncation below 7e-10 on [−π/2, π/2]): sin r = 2·sin h·cos h,
 * cos r = (cos h − sin h)(cos h + sin h). Within 4e-7 of float64 sin/cos of the same argument on every
 * provider (the float32 rounding of r; torch's float32 sin/cos are within 1e-7): a thousand times below
 * what the UNet goldens tolerate. The tensors are tiny ([B, 160]), so the extra nodes cost nothing.
 */
export function sinCos(g: GraphBuilder, a: Tensor): [Tensor, Tensor] {
  const [c1, c2, c3] = TWO_PI_PARTS;
  const k = g.op('Floor', [g.add(g.mul(a, Math.fround(1 / (2 * Math.PI))), 0.5)], [{ dtype: a.dtype, shape: a.shape }])[0]!;
  const r = g.sub(g.sub(g.sub(a, g.mul(k, c1)), g.mul(k, c2)), g.mul(k, c3));
  const h = g.mul(r, 0.5);
  const h2 = g.mul(h, h);
  const horner = (coefficients: readonly number[]): Tensor => {
    // c0 + h2·(c1 + h2·(c2 + …)), innermost first
    let acc: Tensor | number = coefficients[coefficients.length - 1]!;
    for (let i = coefficients.length - 2; i >= 0; i--) acc = g.add(g.mul(h2, acc), coefficients[i]!);
    return acc as Tensor;
  };
  let fact = 1;
  const sinTerms: number[] = [];
  const cosTerms: number[] = [];
  for (let n = 0; n <= 14; n++) {
    if (n > 0) fact *= n;
    const term = (n % 4 < 2 ? 1 : -1) / fact; // ±1/n! with the sign of the series
    if (n % 2 === 1) sinTerms.push(term);
    else cosTerms.push(term);
  }
  const sinH = g.mul(h, horner(sinTerms));
  const cosH = horner(cosTerms);
  const sin = g.mul(g.mul(sinH, cosH), 2);
  const cos = g.mul(g.sub(cosH, sinH), g.add(cosH, sinH)); // cos²h − sin²h
  return [sin, cos];
}

/** TimestepEmbedding: linear_1 → SiLU → linear_2. */
export function timestepEmbedding(g: GraphBuilder, w: WeightScope, x: Tensor): Tensor {
  const h = g.silu(g.linear(x, w.get('linear_1.weight'), w.maybe('linear_1.bias')));
  return g.linear(h, w.get('linear_2.weight'), w.maybe('linear_2.bias'));
}

export interface ConditioningInputs {
  /** [T] with T = 1 or B (diffusers broadcasts a scalar timestep over the batch). */
  timestep: Tensor;
  /** [B, pooled] pooled text embedding (text_time only). */
  textEmbeds?: Tensor;
  /** [B, n] micro-conditioning ids, 6 for SDXL (text_time only). */
  timeIds?: Tensor;
}

/**
 * The conditioning vector every resnet sees: time_embedding(time_proj(t)) plus, for text_time,
 * add_embedding(concat(text_embeds, time_proj(time_ids))). Returns SiLU of it, [T or B, E]:
 * each ResnetBlock2D applies SiLU before time_emb_proj, so it is computed once here.
 */
export function conditioningEmbedding(g: GraphBuilder, w: WeightScope, cfg: EmbeddingConfig, x: ConditioningInputs): Tensor {
  return g.scope('time_embedding', () => {
    // Sinusoids in float32 (large arguments), then the graph's float type.
    const tProj = g.cast(timestepSinusoids(g, x.timestep, cfg.timeProjDim, cfg.flipSinToCos, cfg.freqShift), g.float); // [T, timeProjDim]
    let emb = timestepEmbedding(g, w.at('time_embedding'), tProj); // [T, E]
    if (cfg.textTime) {
      if (!x.textEmbeds || !x.timeIds) throw new Error('a text_time model needs text_embeds and time_ids inputs');
      const ids = g.cast(timestepSinusoids(g, x.timeIds, cfg.textTime.timeIdDim, cfg.flipSinToCos, cfg.freqShift), g.float); // [B, n, d]
      const addEmbeds = g.concat([x.textEmbeds, g.reshape(ids, [0, -1])], -1); // [B, pooled + n·d]
      const last = addEmbeds.shape[1];
      if (typeof last === 'number' && last !== cfg.textTime.projectionInputDim) {
        throw new Error(`text_embeds + time_ids give ${last} features, the config expects ${cfg.textTime.projectionInputDim}`);
      }
      emb = g.add(emb, timestepEmbedding(g, w.at('add_embedding'), addEmbeds)); // [B, E]
    }
    return g.silu(emb);
  });
}

export interface ResnetOptions {
  groups: number;
  eps: number;
  /** Output is divided by it (mid_block_scale_factor / output_scale_factor); 1 in SDXL. */
  outputScale?: number;
}

/** A conv whose padding keeps the size ((k − 1) / 2 each side), from the weight's kernel size. */
export function convSame(g: GraphBuilder, w: WeightScope, name: string, x: Tensor): Tensor {
  const weight = w.get(`${name}.weight`);
  const k = weight.shape[2] as number;
  return g.conv2d(x, weight, w.maybe(`${name}.bias`), { padding: (k - 1) / 2 });
}

/** ResnetBlock2D: x [B, Cin, H, W], tembAct = SiLU(emb) [T, E] → [B, Cout, H, W]. */
export function resnetBlock(g: GraphBuilder, w: WeightScope, x: Tensor, tembAct: Tensor | undefined, o: ResnetOptions): Tensor {
  return g.scope(w.path, () => {
    let h = g.silu(g.groupNorm(x, w.get('norm1.weight'), w.get('norm1.bias'), { groups: o.groups, eps: o.eps }));
    h = convSame(g, w, 'conv1', h); // [B, Cout, H, W]
    if (tembAct && w.has('time_emb_proj.weight')) {
      const t = g.linear(tembAct, w.get('time_emb_proj.weight'), w.maybe('time_emb_proj.bias')); // [T, Cout]
      h = g.add(h, g.unsqueeze(t, [2, 3])); // + [T, Cout, 1, 1]
    }
    h = g.silu(g.groupNorm(h, w.get('norm2.weight'), w.get('norm2.bias'), { groups: o.groups, eps: o.eps }));
    h = convSame(g, w, 'conv2', h);
    const shortcut = w.has('conv_shortcut.weight') ? convSame(g, w, 'conv_shortcut', x) : x;
    const out = g.add(shortcut, h);
    return o.outputScale !== undefined && o.outputScale !== 1 ? g.div(out, o.outputScale) : out;
  });
}

/** Downsample2D (conv, stride 2): padding 0 means diffusers' asymmetric (0, 1, 0, 1) pad. */
export function downsample(g: GraphBuilder, w: WeightScope, x: Tensor, padding: number): Tensor {
  const pads = padding === 0 ? ([0, 0, 1, 1] as const) : padding;
  return g.conv2d(x, w.get('conv.weight'), w.maybe('conv.bias'), { stride: 2, padding: pads });
}

/** The spatial size [H, W] of an NCHW tensor, as an int64 vector. */
export function spatialSize(g: GraphBuilder, like: Tensor): Tensor {
  return g.slice(g.shapeOf(like), [2], [4]);
}

/** F.interpolate(x, size=like's H×W): nearest (torch 'nearest') or bilinear (align_corners=False). */
export function resizeLike(g: GraphBuilder, x: Tensor, size: Tensor, mode: 'nearest' | 'bilinear', shape: Tensor['shape']): Tensor {
  const attrs: Record<string, Attr> = mode === 'nearest'
    ? { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor'), axes: attr.ints([2, 3]) }
    // half_pixel, not pytorch_half_pixel: torch samples (o + 0.5)·r − 0.5 even for a 1-pixel output.
    : { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel'), axes: attr.ints([2, 3]) };
  return g.op('Resize', [x, undefined, undefined, size], [{ dtype: x.dtype, shape }], attrs)[0]!;
}

/**
 * Upsample2D: nearest ×2 then a 3×3 conv. With `like` (the skip it meets next), the size is that
 * tensor's, as diffusers forwards upsample_size when the latent is not a multiple of 2^levels.
 */
export function upsample(g: GraphBuilder, w: WeightScope, x: Tensor, like?: Tensor): Tensor {
  let h: Tensor;
  if (!like || (isStaticShape(like.shape) && isStaticShape(x.shape) && like.shape[2] === 2 * x.shape[2]! && like.shape[3] === 2 * x.shape[3]!)) {
    h = g.resize(x, { scale: 2, mode: 'nearest' });
  } else {
    h = resizeLike(g, x, spatialSize(g, like), 'nearest', [x.shape[0]!, x.shape[1]!, like.shape[2]!, like.shape[3]!]);
  }
  return convSame(g, w, 'conv', h);
}

/** Reshapes `t` to the runtime shape of `like`, keeping like's declared shape. */
export function reshapeLike(g: GraphBuilder, t: Tensor, like: Tensor): Tensor {
  if (isStaticShape(like.shape)) return g.reshape(t, like.shape);
  return g.op('Reshape', [t, g.shapeOf(like)], [{ dtype: t.dtype, shape: like.shape }])[0]!;
}
