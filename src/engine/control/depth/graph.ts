// DepthAnythingForDepthEstimation (transformers modeling_depth_anything.py + modeling_dinov2.py) as an
// ONNX graph, for one input size: the position table is resized on the host for that token grid
// (interpolate.ts) and stored as a constant, so every shape in the graph is static.
//
//   Dinov2: patch conv → [cls, tokens] + pos → layers (h += λ1·Attn(LN1 h); h += λ2·MLP(LN2 h))
//   features = layernorm(hidden_states[i]) for i in out_indices, cls dropped, as [1, D, H/14, W/14]
//   neck: reassemble (1×1 conv, then ConvTranspose ×4/×2, identity or stride-2 conv) → 3×3 conv
//   fusion from the deepest: h = RCU2(h + RCU1(r)) → bilinear (align_corners) to the next size / ×2 → 1×1
//   head: 3×3 conv → bilinear (align_corners) to (H, W) → 3×3 conv → ReLU → 1×1 conv → ReLU (·max_depth)
import { EngineError } from '../../errors.js';
import { GraphBuilder, attr, type ModelDef, type Tensor } from '../../onnx/index.js';
import { WeightScope, type TensorSource } from '../../nets/sdxl-weights.js';
import type { DepthAnythingConfig } from './config.js';
import { torchBicubic } from './interpolate.js';

export const DEPTH_IO = { input: 'pixel_values', output: 'predicted_depth' } as const;

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

/** F.interpolate(bilinear, align_corners=True) to a static size. */
function resizeAlignCorners(g: GraphBuilder, x: Tensor, size: readonly [number, number]): Tensor {
  if (x.shape[2] === size[0] && x.shape[3] === size[1]) return x;
  return g.op('Resize', [x, undefined, undefined, g.ints([...size])], [{ dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, size[0], size[1]] }], {
    mode: attr.string('linear'),
    coordinate_transformation_mode: attr.string('align_corners'),
    axes: attr.ints([2, 3]),
  })[0]!;
}

function dims(x: Tensor): [number, number] {
  const [h, w] = [x.shape[2], x.shape[3]];
  if (typeof h !== 'number' || typeof w !== 'number') throw new Error(`depth graph: ${x} has no static size`);
  return [h, w];
}

function conv(g: GraphBuilder, w: WeightScope, x: Tensor, options: { padding?: number; stride?: number } = {}): Tensor {
  return g.conv2d(x, w.get('weight'), w.maybe('bias'), { padding: options.padding ?? 0, stride: options.stride ?? 1 });
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
  /** Input height and width in pixels (multiples of the patch size). */
  height: number;
  width: number;
  dtype?: 'float32' | 'float16';
}

/** The graph for [1, 3, height, width] pixel values → [1, height, width] predicted depth. */
export function buildDepthAnythingGraph(weights: TensorSource, cfg: DepthAnythingConfig, options: DepthGraphOptions): ModelDef {
  const { height, width } = options;
  const p = cfg.patch;
  if (height % p !== 0 || width % p !== 0 || height <= 0 || width <= 0) {
    throw new EngineError('bad_input', `Depth Anything needs an input whose sides are multiples of ${p}, got ${width}×${height}`);
  }
  const gh = height / p;
  const gw = width / p;
  const D = cfg.hidden;
  const g = new GraphBuilder({ name: 'depth-anything', dtype: options.dtype ?? 'float32', keepIoFloat32: true });
  const root = new WeightScope(g, weights, '');
  const bb = root.at('backbone');
  const x = g.input(DEPTH_IO.input, [1, 3, height, width]);

  // Embeddings.
  const emb = bb.at('embeddings');
  const patches = g.conv2d(x, emb.get('patch_embeddings.projection.weight', [D, 3, p, p]), emb.get('patch_embeddings.projection.bias'), { stride: p });
  const tokens = g.transpose(g.reshape(patches, [1, D, gh * gw]), [0, 2, 1]); // [1, N, D]
  let h = g.concat([emb.get('cls_token', [1, 1, D]), tokens], 1);
  const tableInfo = weights.info('backbone.embeddings.position_embeddings');
  const positions = g.param(`backbone.embeddings.position_embeddings@${gh}x${gw}.${cfg.positionInterpolation}`, [1, 1 + gh * gw, D], () =>
    interpolatePositions(weights.readFloat32('backbone.embeddings.position_embeddings'), cfg, gh, gw));
  if (tableInfo.shape[tableInfo.shape.length - 1] !== D) throw new EngineError('weight_shape_mismatch', `position_embeddings [${tableInfo.shape.join(', ')}] do not end in hidden size ${D}`);
  h = g.add(h, positions);

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
  const features = cfg.outIndices.map((idx, i) => g.scope(`neck.${i}`, () => {
    let s = states.get(idx)!;
    if (cfg.applyLayernorm) s = g.layerNorm(s, bb.get('layernorm.weight'), bb.get('layernorm.bias'), { eps: cfg.layerNormEps });
    s = g.slice(s, [1], [1 + gh * gw], [1]); // drop cls
    s = g.transpose(g.reshape(s, [1, gh, gw, D]), [0, 3, 1, 2]); // [1, D, gh, gw]
    const layer = neck.at(`reassemble_stage.layers.${i}`);
    s = conv(g, layer.at('projection'), s);
    const f = cfg.reassembleFactors[i]!;
    if (f > 1) {
      const rw = layer.get('resize.weight');
      const [, cout, kh, kw] = rw.shape as number[];
      const [sh, sw] = dims(s);
      s = g.op('ConvTranspose', [s, rw, layer.maybe('resize.bias')], [{ dtype: s.dtype, shape: [1, cout!, sh * f, sw * f] }], {
        kernel_shape: attr.ints([kh!, kw!]), strides: attr.ints([f, f]),
      })[0]!;
    } else if (f < 1) {
      s = conv(g, layer.at('resize'), s, { padding: 1, stride: Math.round(1 / f) });
    }
    return g.conv2d(s, neck.get(`convs.${i}.weight`), neck.maybe(`convs.${i}.bias`), { padding: 1 });
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
        const size = dims(fused);
        const [rh, rw] = dims(feat);
        const r = rh === size[0] && rw === size[1] ? feat : g.resize(feat, { size, mode: 'bilinear' });
        hs = g.add(fused, residualConvUnit(g, layer.at('residual_layer1'), r));
      }
      hs = residualConvUnit(g, layer.at('residual_layer2'), hs);
      const [hh, hw] = dims(hs);
      const next = reversed[k + 1];
      hs = resizeAlignCorners(g, hs, next ? dims(next) : [hh * 2, hw * 2]);
      return conv(g, layer.at('projection'), hs);
    });
  });

  // Head (on the last fused map: head_in_index −1).
  if (cfg.headInIndex !== -1 && cfg.headInIndex !== features.length - 1) {
    throw new EngineError('bad_model_config', `head_in_index ${cfg.headInIndex} is not supported (only the last fused map, −1)`);
  }
  const head = root.at('head');
  let d = conv(g, head.at('conv1'), fused!, { padding: 1 });
  d = resizeAlignCorners(g, d, [gh * p, gw * p]);
  d = relu(g, conv(g, head.at('conv2'), d, { padding: 1 }));
  d = conv(g, head.at('conv3'), d);
  d = cfg.depthType === 'metric' ? g.sigmoid(d) : relu(g, d);
  if (cfg.maxDepth !== 1) d = g.mul(d, cfg.maxDepth);
  g.output(g.squeeze(d, [1]), DEPTH_IO.output);
  return g.build();
}
