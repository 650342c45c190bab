// The attention half of the SDXL UNet family (diffusers transformers/transformer_2d.py and
// attention.py): Transformer2DModel → BasicTransformerBlock (attn1 self-attention, attn2
// cross-attention, GEGLU feed-forward), with InstantID's decoupled cross-attention (IP-Adapter)
// inside every attn2 when image tokens are given.
import type { GraphBuilder, Tensor } from '../onnx/index.js';
import { reshapeLike, resizeLike, spatialSize } from './sdxl-blocks.js';
import type { WeightScope } from './sdxl-weights.js';

/**
 * IP-Adapter (InstantID IPAttnProcessor): attn2 adds scale · Attn(q, to_k_ip(img), to_v_ip(img))
 * to its text attention, before to_out. The weights are looked up by the attn2 module's path.
 */
export interface IpAdapterContext {
  /** [B, n, Cc] image prompt tokens (the last n tokens of encoder_hidden_states). */
  tokens: Tensor;
  /** [1] runtime scale (ip_adapter_scale): changing it needs no rebuild. */
  scale: Tensor;
  /** to_k_ip / to_v_ip weights [inner, Cc] of the attn2 at `path`. */
  weights(path: string): { k: Tensor; v: Tensor };
  /** [Bm, 1, Hm, Wm] region mask in image pixels (the `_full` pipeline's face box), optional. */
  regionMask?: Tensor;
}

export interface CrossContext {
  /** [B, S, Cc] text tokens for attn2 (S may be symbolic). */
  text: Tensor;
  ip?: IpAdapterContext;
}

/** Attention (diffusers Attention with the default processor): x [B, N, C] attends to ctx [B, S, Cc]. */
function attention(g: GraphBuilder, w: WeightScope, x: Tensor, ctx: Tensor, heads: number, ip?: { ctx: IpAdapterContext; mask?: Tensor }): Tensor {
  const q = g.linear(x, w.get('to_q.weight'), w.maybe('to_q.bias')); // [B, N, inner]
  const k = g.linear(ctx, w.get('to_k.weight'), w.maybe('to_k.bias')); // [B, S, inner]
  const v = g.linear(ctx, w.get('to_v.weight'), w.maybe('to_v.bias'));
  let o = g.attention(q, k, v, { heads }); // [B, N, inner]
  if (ip) {
    const { k: wk, v: wv } = ip.ctx.weights(w.path);
    const kIp = g.linear(ip.ctx.tokens, wk); // [B, n, inner]
    const vIp = g.linear(ip.ctx.tokens, wv);
    let oIp = g.attention(q, kIp, vIp, { heads }); // [B, N, inner]
    if (ip.mask) oIp = g.mul(oIp, ip.mask); // × [Bm, N, 1]
    o = g.add(o, g.mul(oIp, ip.ctx.scale));
  }
  return g.linear(o, w.get('to_out.0.weight'), w.maybe('to_out.0.bias')); // [B, N, C]
}

/** FeedForward with GEGLU: proj → (h, gate) → h·gelu(gate) → linear. */
function feedForward(g: GraphBuilder, w: WeightScope, x: Tensor): Tensor {
  const proj = g.linear(x, w.get('net.0.proj.weight'), w.maybe('net.0.proj.bias')); // [B, N, 2·inner]
  const [h, gate] = g.split(proj, 2, -1) as [Tensor, Tensor];
  return g.linear(g.mul(h, g.gelu(gate)), w.get('net.2.weight'), w.maybe('net.2.bias')); // [B, N, C]
}

/** BasicTransformerBlock (norm_type layer_norm): x [B, N, C] → [B, N, C]. */
function transformerBlock(g: GraphBuilder, w: WeightScope, x: Tensor, ctx: CrossContext, heads: number, ipMask: Tensor | undefined): Tensor {
  return g.scope(w.path, () => {
    const norm = (name: string, t: Tensor): Tensor => g.layerNorm(t, w.get(`${name}.weight`), w.maybe(`${name}.bias`), { eps: 1e-5 });
    let h = x;
    const n1 = norm('norm1', h);
    h = g.add(h, attention(g, w.at('attn1'), n1, n1, heads));
    const ip = ctx.ip ? { ctx: ctx.ip, ...(ipMask ? { mask: ipMask } : {}) } : undefined;
    h = g.add(h, attention(g, w.at('attn2'), norm('norm2', h), ctx.text, heads, ip));
    return g.add(h, feedForward(g, w.at('ff'), norm('norm3', h)));
  });
}

/**
 * The IP region mask at a layer of x's size: F.interpolate(mask, 1/ratio, 'nearest') with
 * ratio = sqrt(Hm·Wm / N), i.e. the top-left pixel of each block, flattened → [Bm, N, 1].
 */
function regionMaskAt(g: GraphBuilder, mask: Tensor, x: Tensor): Tensor {
  const resized = resizeLike(g, mask, spatialSize(g, x), 'nearest', [mask.shape[0]!, 1, x.shape[2]!, x.shape[3]!]); // [Bm, 1, h, w]
  return g.reshape(resized, [0, -1, 1]); // [Bm, h·w, 1]
}

export interface Transformer2dOptions {
  heads: number;
  depth: number;
  groups: number;
  useLinearProjection: boolean;
}

/** Transformer2DModel on continuous input: x [B, C, H, W] → [B, C, H, W] (with the residual). */
export function transformer2d(g: GraphBuilder, w: WeightScope, x: Tensor, ctx: CrossContext, o: Transformer2dOptions): Tensor {
  return g.scope(w.path, () => {
    let h = g.groupNorm(x, w.get('norm.weight'), w.get('norm.bias'), { groups: o.groups, eps: 1e-6 });
    if (!o.useLinearProjection) h = g.conv2d(h, w.get('proj_in.weight'), w.maybe('proj_in.bias'));
    h = g.transpose(g.reshape(h, [0, 0, -1]), [0, 2, 1]); // [B, H·W, inner]
    if (o.useLinearProjection) h = g.linear(h, w.get('proj_in.weight'), w.maybe('proj_in.bias'));
    const ipMask = ctx.ip?.regionMask ? regionMaskAt(g, ctx.ip.regionMask, x) : undefined;
    for (let i = 0; i < o.depth; i++) h = transformerBlock(g, w.at(`transformer_blocks.${i}`), h, ctx, o.heads, ipMask);
    if (o.useLinearProjection) h = g.linear(h, w.get('proj_out.weight'), w.maybe('proj_out.bias'));
    h = reshapeLike(g, g.transpose(h, [0, 2, 1]), x); // [B, C, H, W]
    if (!o.useLinearProjection) h = g.conv2d(h, w.get('proj_out.weight'), w.maybe('proj_out.bias'));
    return g.add(h, x);
  });
}
