// DepthAnythingForDepthEstimation (transformers modeling_depth_anything.py + modeling_dinov2.py) as one
// ONNX graph for every input size: the spatial dims are symbolic, and the position embeddings are an
// input — the host resizes Dinov2's table for the token grid (interpolatePositions, interpolate.ts), so
// one compiled model (one copy of the weights on disk) serves every photo shape.
//
//   Dinov2: patch conv → [cls, tokens] + pos → layers (h += λ1·Attn(LN1 h); h += λ2·MLP(LN2 h))
//   features = layernorm(hidden_states[i]) for i in out_indices, cls dropped, as [1, D, H/14, W/14]
//   neck: reassemble (1×1 conv, then ConvTranspose ×4/×2, identity or stride-2 conv) → 3×3 conv
//   fusion from the deepest: h = RCU2(h + RCU1(r)) → bilinear (align_corners) to the next size / ×2 → 1×1
//   head: 3×3 conv → bilinear (align_corners) to (H, W) → 3×3 conv → ReLU → 1×1 conv → ReLU (·max_depth)
import { EngineError } from '../../errors.js';
import { GraphBuilder, attr, type AttentionMode, type ModelDef, type Tensor } from '../../onnx/index.js';
import { UNKNOWN } from '../../onnx/shape.js';
import { WeightScope, type TensorSource } from '../../nets/sdxl-weights.js';
import type { DepthAnythingConfig } from './config.js';
import { torchBicubic } from './interpolate.js';

export const DEPTH_IO = { input: 'pixel_values', positions: 'position_embeddings', output: 'predicted_depth' } as const;

/** The position embeddings for an (gh × gw) token grid, [1, 1 + gh·gw, D], as Dinov2's interpolate_pos_encoding gives them. */
export function interpolatePositions(table: Float32Array, cfg: DepthAnythingConfig, gh: number, gw: number): Float32Array {
  const d = cfg.hidden;
  const positions = table.length / d - 1;
  const g = Math.round(Math.sqrt(positions));
  if (g * g !== positions) throw new EngineError('bad_model_files', `the position table has ${positions} patch positions, not a square grid`);
  // transformers returns the table as it is when the token count and the grid are the same and H == W.
  if (gh * gw === positions && gh === gw) return table;
  const planes = new Float32Array(d * positions); // [D, g, g]
  for (let p = 0; p < positions; p++) for (let c = 0; c < d; c++) planes[c * positions + p] = table[(1 + p) * d + c]!;
  const scaled = cfg.positionInterpolation === 'scale_factor'
    ? torchBicubic(planes, d, g, g, gh, gw, [(gh + 0.1) / g, (gw + 0.1) / g])
    : torchBicubic(planes, d, g, g, gh, gw);
  const out = new Float32Array((1 + gh * gw) * d);
  out.set(table.subarray(0, d));
  const n = gh * gw;
  for (let p = 0; p < n; p++) for (let c = 0; c < d; c++) out[(1 + p) * d + c] = scaled[c * n + p]!;
  return out;
}

const relu = (g: GraphBuilder, x: Tensor): Tensor => g.op('Relu', [x], [{ dtype: x.dtype, shape: x.shape }])[0]!;

/** [H, W] of x as an int64 tensor. */
const sizeOf = (g: GraphBuilder, x: Tensor): Tensor => g.slice(g.shapeOf(x), [2], [4]);

/** F.interpolate(x, size=sizes) with align_corners True (linear) or False (pytorch_half_pixel); the same size is the identity. */
function resizeTo(g: GraphBuilder, x: Tensor, sizes: Tensor, alignCorners: boolean): Tensor {
  return g.op('Resize', [x, undefined, undefined, sizes], [{ dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, UNKNOWN, UNKNOWN] }], {
    mode: attr.string('linear'),
    coordinate_transformation_mode: attr.string(alignCorners ? 'align_corners' : 'pytorch_half_pixel'),
    axes: attr.ints([2, 3]),
  })[0]!;
}

/** Channel padding for convs (graphChoicesFor's convChannelMultiple), set per graph build. */
let channelMultiple = 1;

/** x ⊛ weight, with zero input channels added up to channelMultiple (same result; works around a WebGPU Conv fault). */
function conv2dPadded(g: GraphBuilder, x: Tensor, weight: Tensor, bias: Tensor | undefined, options: { padding: number; stride: number }): Tensor {
  const cin = weight.shape[1];
  const extra = typeof cin === 'number' ? (channelMultiple - (cin % channelMultiple)) % channelMultiple : 0;
  if (extra > 0) {
    const pad = (t: Tensor): Tensor => g.op('Pad', [t, g.ints([0, 0, 0, 0, 0, extra, 0, 0])], [{ dtype: t.dtype, shape: [t.shape[0]!, (cin as number) + extra, t.shape[2]!, t.shape[3]!] }])[0]!;
    x = pad(x);
    weight = pad(weight);
  }
  return g.conv2d(x, weight, bias, options);
}

function conv(g: GraphBuilder, w: WeightScope, x: Tensor, options: { padding?: number; stride?: number } = {}): Tensor {
  return conv2dPadded(g, x, w.get('weight'), w.maybe('bias'), { padding: options.padding ?? 0, stride: options.stride ?? 1 });
}

function dinov2Layer(g: GraphBuilder, w: WeightScope, cfg: DepthAnythingConfig, h: Tensor): Tensor {
  const eps = { eps: cfg.layerNormEps };
  const a = w.at('attention.attention');
  const x = g.layerNorm(h, w.get('norm1.weight'), w.get('norm1.bias'), eps);
  const q = g.linear(x, a.get('query.weight'), a.maybe('query.bias'));
  const k = g.linear(x, a.get('key.weight'), a.maybe('key.bias'));
  const v = g.linear(x, a.get('value.weight'), a.maybe('value.bias'));
  const o = g.linear(g.attention(q, k, v, { heads: cfg.heads }), w.get('attention.output.dense.weight'), w.get('attention.output.dense.bias'));
  h = g.add(h, g.mul(o, w.get('layer_scale1.lambda1', [cfg.hidden])));
  const y = g.layerNorm(h, w.get('norm2.weight'), w.get('norm2.bias'), eps);
  const m = g.linear(g.gelu(g.linear(y, w.get('mlp.fc1.weight'), w.get('mlp.fc1.bias'))), w.get('mlp.fc2.weight'), w.get('mlp.fc2.bias'));
  return g.add(h, g.mul(m, w.get('layer_scale2.lambda1', [cfg.hidden])));
}

function residualConvUnit(g: GraphBuilder, w: WeightScope, x: Tensor): Tensor {
  const h = conv(g, w.at('convolution1'), relu(g, x), { padding: 1 });
  return g.add(conv(g, w.at('convolution2'), relu(g, h), { padding: 1 }), x);
}

export interface DepthGraphOptions {
  dtype?: 'float32' | 'float16';
  /** 'fused' (com.microsoft.MultiHeadAttention, blockwise on the CPU EP) or 'plain' (MatMul/Softmax/MatMul). */
  attention?: AttentionMode;
  /** Pad conv input channels to a multiple of this (graphChoicesFor(ep).convChannelMultiple); 1 by default. */
  convChannelMultiple?: number;
}

/**
 * The graph: pixel_values [B, 3, H, W] and position_embeddings [1, 1 + gh·gw, D] (interpolatePositions;
 * gh = H // 14, gw = W // 14) → predicted_depth [B, 14·gh, 14·gw] (the input size when it is a multiple of 14).
 */
export function buildDepthAnythingGraph(weights: TensorSource, cfg: DepthAnythingConfig, options: DepthGraphOptions = {}): ModelDef {
  const p = cfg.patch;
  const D = cfg.hidden;
  channelMultiple = Math.max(1, options.convChannelMultiple ?? 1);
  const g = new GraphBuilder({ name: 'depth-anything', dtype: options.dtype ?? 'float32', keepIoFloat32: true, ...(options.attention ? { attention: options.attention } : {}) });
  const root = new WeightScope(g, weights, '');
  const bb = root.at('backbone');
  const x = g.input(DEPTH_IO.input, ['B', 3, 'H', 'W']);
  const batch = g.slice(g.shapeOf(x), [0], [1]);
  const positions = g.input(DEPTH_IO.positions, [1, 'T', D]);
  const table = weights.info('backbone.embeddings.position_embeddings').shape;
  if (table[table.length - 1] !== D) throw new EngineError('weight_shape_mismatch', `position_embeddings [${table.join(', ')}] do not end in hidden size ${D}`);

  // Embeddings.
  const emb = bb.at('embeddings');
  const patches = g.conv2d(x, emb.get('patch_embeddings.projection.weight', [D, 3, p, p]), emb.get('patch_embeddings.projection.bias'), { stride: p });
  const grid = sizeOf(g, patches); // [gh, gw]
  const tokens = g.transpose(g.reshape(patches, [0, D, -1]), [0, 2, 1]); // [B, N, D]
  const cls = g.op('Expand', [emb.get('cls_token', [1, 1, D]), g.concat([batch, g.ints([1, D])], 0)], [{ dtype: tokens.dtype, shape: [x.shape[0]!, 1, D] }])[0]!;
  let h = g.add(g.concat([cls, tokens], 1), positions);

  // Encoder; hidden state i is after layer i (0 = embeddings).
  const wanted = new Set(cfg.outIndices);
  const states = new Map<number, Tensor>();
  if (wanted.has(0)) states.set(0, h);
  const last = Math.max(...cfg.outIndices);
  for (let i = 0; i < last; i++) {
    h = g.scope(`backbone.encoder.layer.${i}`, () => dinov2Layer(g, bb.at(`encoder.layer.${i}`), cfg, h));
    if (wanted.has(i + 1)) states.set(i + 1, h);
  }

  // Neck: reassemble + 3×3 convs.
  const neck = root.at('neck');
  const gridShape = g.concat([batch, grid, g.ints([D])], 0);
  const features = cfg.outIndices.map((idx, i) => g.scope(`neck.${i}`, () => {
    let s = states.get(idx)!;
    if (cfg.applyLayernorm) s = g.layerNorm(s, bb.get('layernorm.weight'), bb.get('layernorm.bias'), { eps: cfg.layerNormEps });
    s = g.slice(s, [1], [2147483647], [1]); // drop cls
    s = g.transpose(g.reshape(s, gridShape), [0, 3, 1, 2]); // [B, D, gh, gw]
    const layer = neck.at(`reassemble_stage.layers.${i}`);
    s = conv(g, layer.at('projection'), s);
    const f = cfg.reassembleFactors[i]!;
    if (f > 1) {
      const rw = layer.get('resize.weight');
      const [, cout, kh, kw] = rw.shape as number[];
      s = g.op('ConvTranspose', [s, rw, layer.maybe('resize.bias')], [{ dtype: s.dtype, shape: [s.shape[0]!, cout!, UNKNOWN, UNKNOWN] }], {
        kernel_shape: attr.ints([kh!, kw!]), strides: attr.ints([f, f]),
      })[0]!;
    } else if (f < 1) {
      s = conv(g, layer.at('resize'), s, { padding: 1, stride: Math.round(1 / f) });
    }
    return conv2dPadded(g, s, neck.get(`convs.${i}.weight`), neck.maybe(`convs.${i}.bias`), { padding: 1, stride: 1 });
  }));

  // Fusion, deepest first.
  const reversed = [...features].reverse();
  let fused: Tensor | undefined;
  reversed.forEach((feat, k) => {
    const layer = neck.at(`fusion_stage.layers.${k}`);
    fused = g.scope(`neck.fusion.${k}`, () => {
      let hs: Tensor;
      if (fused === undefined) {
        hs = feat;
      } else {
        // The residual is resized (half-pixel bilinear) to the running map when they differ; same size: identity.
        const r = resizeTo(g, feat, sizeOf(g, fused), false);
        hs = g.add(fused, residualConvUnit(g, layer.at('residual_layer1'), r));
      }
      hs = residualConvUnit(g, layer.at('residual_layer2'), hs);
      const next = reversed[k + 1];
      hs = resizeTo(g, hs, next ? sizeOf(g, next) : g.mul(sizeOf(g, hs), 2), true);
      return conv(g, layer.at('projection'), hs);
    });
  });

  // Head (on the last fused map: head_in_index −1), resized to the input size (patch grid × 14).
  if (cfg.headInIndex !== -1 && cfg.headInIndex !== features.length - 1) {
    throw new EngineError('bad_model_config', `head_in_index ${cfg.headInIndex} is not supported (only the last fused map, −1)`);
  }
  const head = root.at('head');
  let d = conv(g, head.at('conv1'), fused!, { padding: 1 });
  d = resizeTo(g, d, g.mul(grid, p), true);
  d = relu(g, conv(g, head.at('conv2'), d, { padding: 1 }));
  d = conv(g, head.at('conv3'), d);
  d = cfg.depthType === 'metric' ? g.sigmoid(d) : relu(g, d);
  if (cfg.maxDepth !== 1) d = g.mul(d, cfg.maxDepth);
  g.output(g.squeeze(d, [1]), DEPTH_IO.output);
  return g.build();
}
