// GraphBuilder: the vocabulary nets are written in. Layers take torch-layout weights (Linear
// [out, in], Conv2d [out, in/groups, kh, kw], norms [C]) and emit standard ONNX ops that the CPU EP
// runs (engine-prior-art.md §2.2). With dtype float16, norms, softmax and resize compute in float32
// behind Casts, as ORT's own fp16 conversion does for SD (§2.4).
//
//   const g = new GraphBuilder({ dtype: 'float16' });
//   const x = g.input('sample', ['B', 320, 64, 64]);              // named dims stay symbolic
//   const w = g.param('norm1.weight', [320], () => file.float32('norm1.weight')); // loaded at write time
//   const h = g.silu(g.groupNorm(x, w, g.param('norm1.bias', [320], b1), { groups: 32, eps: 1e-5 }));
//   g.output(h, 'out');                                             // h.shape: ['B', 320, 64, 64]
//   await writeModel(g.build(), 'unet.onnx');                       // serialize.ts, or compileCached
//
// Tensors carry dtype and shape (numbers where static); numbers stand for scalar constants
// (g.mul(x, 0.5)); g.scope('down_blocks.0', () => …) names nodes; g.op(…) is the escape hatch.
import type { DType, HostArray } from './dtype.js';
import { LORA_INPUT, attr, Tensor, type Attr } from './graph-core.js';
import { TensorOps } from './ops-tensor.js';
import { UNKNOWN, convOutDim, divDim, isStatic, mulDim, type Dim, type Shape } from './shape.js';

export { Tensor, attr, GRAPH_BUILDER_VERSION, LORA_INPUT, type Attr, type AttentionMode, type BuilderOptions, type ModelDef, type WeightSource, type WeightData } from './graph-core.js';
export type { Operand } from './ops-tensor.js';
export type { Dim, Shape } from './shape.js';

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  /** Symmetric [ph, pw] (or one number), or explicit [top, left, bottom, right]. */
  padding?: number | readonly [number, number] | readonly [number, number, number, number];
  dilation?: number | readonly [number, number];
  groups?: number;
}

export interface AttentionOptions {
  heads: number;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
  /** Added to the scores (float, broadcastable to [B, heads, Sq, Sk]), or bool where true = attend. */
  mask?: Tensor;
}

export interface ResizeOptions {
  /** Integer or fractional factor on both spatial dims, as F.interpolate(scale_factor=…). */
  scale?: number;
  /** Output [H, W], as F.interpolate(size=…). */
  size?: readonly [number, number];
  /** nearest: torch 'nearest'; bilinear: torch 'bilinear' with align_corners=False. */
  mode?: 'nearest' | 'bilinear';
}

const pair = (v: number | readonly number[]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0]!, v[1]!]);

export class GraphBuilder extends TensorOps {
  /** torch.nn.Linear: x @ wᵀ + b with w as [out, in]; the stored initializer is pre-transposed. */
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const [out, inp] = this.staticDims(w, 'linear weight');
    if (w.rank !== 2) throw new Error(`linear: weight ${w} must be [out, in]`);
    const last = x.shape[x.rank - 1];
    if (typeof last === 'number' && last !== inp) throw new Error(`linear: ${x} does not match weight ${w}`);
    const wt = this.variant(w, { key: 'T', dims: [inp!, out!], transform: transpose2d(out!, inp!) }) ?? this.transpose(w, [1, 0]);
    const y = this.matmul(x, wt); // [.., out]
    const biased = b ? this.add(y, b) : y;
    return this.loraSlots?.(w.name) ? this.add(biased, this.loraBranch(x, w.name, inp!, out!)) : biased;
  }

  /**
   * ((x · Dᵀ) ⊙ s) · Uᵀ for a linear's LoRA slot, with D [r, in], U [out, r] (the factors' own
   * layouts, so a LoRA file's arrays feed it as they are) and s [r] (scale · alpha / rank per rank
   * column) float32 graph inputs, cast to the compute type. ORT folds the Transposes into its MatMuls.
   */
  private loraBranch(x: Tensor, weight: string, inp: number, out: number): Tensor {
    const rank = `lora_rank:${weight}`;
    const factor = (name: string, shape: Shape): Tensor => {
      const t = this.input(name, shape, 'float32');
      return t.dtype === x.dtype ? t : this.cast(t, x.dtype);
    };
    const down = factor(LORA_INPUT.down(weight), [rank, inp]);
    const up = factor(LORA_INPUT.up(weight), [out, rank]);
    const scale = factor(LORA_INPUT.scale(weight), [rank]);
    const h = this.mul(this.matmul(x, this.transpose(down, [1, 0])), scale); // [.., r]
    return this.matmul(h, this.transpose(up, [1, 0])); // [.., out]
  }

  /** torch.nn.Conv2d (NCHW). */
  conv2d(x: Tensor, w: Tensor, b?: Tensor, options: Conv2dOptions = {}): Tensor {
    const [cout, , kh, kw] = this.staticDims(w, 'conv2d weight');
    if (w.rank !== 4 || x.rank !== 4) throw new Error(`conv2d: ${x} with weight ${w}: both must be rank 4`);
    const [sh, sw] = pair(options.stride ?? 1);
    const [dh, dw] = pair(options.dilation ?? 1);
    const p = options.padding ?? 0;
    const pads = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : [...p];
    const groups = options.groups ?? 1;
    const shape: Dim[] = [
      x.shape[0]!,
      cout!,
      convOutDim(x.shape[2]!, kh!, sh, pads[0]!, pads[2]!, dh),
      convOutDim(x.shape[3]!, kw!, sw, pads[1]!, pads[3]!, dw),
    ];
    const attrs: Record<string, Attr> = {
      kernel_shape: attr.ints([kh!, kw!]),
      strides: attr.ints([sh, sw]),
      pads: attr.ints(pads as number[]),
      dilations: attr.ints([dh, dw]),
      group: attr.int(groups),
    };
    return this.emit1('Conv', [x, w, b], x.dtype, shape, attrs);
  }

  /**
   * torch.nn.GroupNorm over [N, C, ...]: Reshape to [N, G, -1] → InstanceNormalization → Reshape
   * back → per-channel scale and shift (faster on the CPU EP than GroupNormalization-21, §2.2).
   */
  groupNorm(x: Tensor, w: Tensor, b: Tensor, options: { groups: number; eps?: number }): Tensor {
    const { groups } = options;
    const channels = x.shape[1];
    if (x.rank < 3) throw new Error(`groupNorm: ${x} must be [N, C, ...]`);
    if (typeof channels === 'number' && channels % groups !== 0) throw new Error(`groupNorm: ${channels} channels in ${groups} groups`);
    return this.inFloat32(x, (x32) => {
      const grouped = this.reshape(x32, [0, groups, -1]); // [N, G, C/G·H·W]
      const ones = this.constant(new Array<number>(groups).fill(1), { dtype: 'float32' });
      const zeros = this.constant(new Array<number>(groups).fill(0), { dtype: 'float32' });
      const normed = this.emit1('InstanceNormalization', [grouped, ones, zeros], 'float32', grouped.shape, {
        epsilon: attr.float(options.eps ?? 1e-5),
      });
      const back = isStatic(x.shape)
        ? this.reshape(normed, x.shape)
        : this.emit1('Reshape', [normed, this.shapeOf(x32)], 'float32', x.shape); // [N, C, ...]
      return this.add(this.mul(back, this.perChannel(w, x.rank)), this.perChannel(b, x.rank));
    });
  }

  /** torch.nn.LayerNorm over the trailing dims that `w` covers (LayerNormalization-17). */
  layerNorm(x: Tensor, w: Tensor, b?: Tensor, options: { eps?: number } = {}): Tensor {
    const axis = x.rank - w.rank;
    return this.inFloat32(x, (x32) =>
      this.emit1('LayerNormalization', [x32, this.asFloat32(w), b ? this.asFloat32(b) : undefined], 'float32', x.shape, {
        axis: attr.int(axis),
        epsilon: attr.float(options.eps ?? 1e-5),
      }));
  }

  softmax(x: Tensor, axis = -1): Tensor {
    return this.inFloat32(x, (x32) => this.unary('Softmax', x32, { axis: attr.int(axis) }));
  }

  /** Exact GELU (erf), or the tanh approximation. */
  gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
    if (this.options.opset >= 20) return this.unary('Gelu', x, { approximate: attr.string(approximate) });
    if (approximate === 'tanh') {
      const inner = this.mul(this.add(x, this.mul(this.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return this.mul(this.mul(x, 0.5), this.add(this.tanh(inner), 1));
    }
    return this.mul(this.mul(x, 0.5), this.add(this.erf(this.mul(x, Math.SQRT1_2)), 1));
  }

  /** CLIP's quick_gelu: x·sigmoid(1.702x). */
  quickGelu(x: Tensor): Tensor {
    return this.mul(x, this.sigmoid(this.mul(x, 1.702)));
  }

  /** SiLU / swish: x·sigmoid(x). */
  silu(x: Tensor): Tensor {
    return this.mul(x, this.sigmoid(x));
  }

  /** F.interpolate on [N, C, H, W]. */
  resize(x: Tensor, options: ResizeOptions): Tensor {
    const mode = options.mode ?? 'nearest';
    const attrs: Record<string, Attr> = mode === 'nearest'
      ? { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor') }
      : { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('pytorch_half_pixel') };
    let shape: Dim[];
    let scales: Tensor | undefined;
    let sizes: Tensor | undefined;
    if (options.size) {
      shape = [x.shape[0]!, x.shape[1]!, options.size[0], options.size[1]];
      sizes = this.ints([...options.size]);
      attrs['axes'] = attr.ints([2, 3]);
    } else if (options.scale !== undefined) {
      const s = options.scale;
      const scaled = (d: Dim): Dim => (typeof d === 'number' ? Math.floor(d * s) : UNKNOWN);
      shape = [x.shape[0]!, x.shape[1]!, scaled(x.shape[2]!), scaled(x.shape[3]!)];
      scales = this.constant([1, 1, s, s], { dtype: 'float32' });
    } else {
      throw new Error('resize: give scale or size');
    }
    return this.inFloat32(x, (x32) => this.emit1('Resize', [x32, undefined, scales, sizes], 'float32', shape, attrs));
  }

  /**
   * Multi-head scaled dot-product attention, diffusers layout: q [B, Sq, H·D], k [B, Sk, H·D],
   * v [B, Sk, H·Dv] → [B, Sq, H·Dv]. Softmax runs in float32.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
    const { heads } = options;
    const d = divDim(q.shape[2]!, heads);
    const dv = divDim(v.shape[2]!, heads);
    if (typeof d !== 'number' || typeof dv !== 'number') throw new Error(`attention: ${q} / ${v} need a static last dim`);
    const scale = options.scale ?? 1 / Math.sqrt(d);
    const outShape: Dim[] = [q.shape[0]!, q.shape[1]!, mulDim(heads, dv)];
    let mask = options.mask;
    if (mask && mask.dtype === 'bool') mask = this.where(mask, this.constant(0, { dtype: q.dtype }), -Infinity);
    if (this.options.attention === 'fused') {
      // MultiHeadAttention's attention_bias must be 4-D ([B or 1, H or 1, Sq, Sk]): lift a lower-rank mask.
      if (mask && mask.rank < 4) mask = this.unsqueeze(mask, Array.from({ length: 4 - mask.rank }, (_, i) => i));
      return this.emit1('MultiHeadAttention', [q, k, v, undefined, undefined, mask], q.dtype, outShape, {
        num_heads: attr.int(heads),
        scale: attr.float(scale),
      }, 'com.microsoft');
    }
    const qh = this.transpose(this.reshape(this.mul(q, scale), [0, 0, heads, d]), [0, 2, 1, 3]); // [B, H, Sq, D]
    const kt = this.transpose(this.reshape(k, [0, 0, heads, d]), [0, 2, 3, 1]); // [B, H, D, Sk]
    const vh = this.transpose(this.reshape(v, [0, 0, heads, dv]), [0, 2, 1, 3]); // [B, H, Sk, Dv]
    let scores = this.matmul(qh, kt); // [B, H, Sq, Sk]
    if (mask) scores = this.add(scores, mask);
    const o = this.matmul(this.softmax(scores, -1), vh); // [B, H, Sq, Dv]
    return this.reshape(this.transpose(o, [0, 2, 1, 3]), [0, 0, heads * dv]); // [B, Sq, H·Dv]
  }

  /**
   * Any other ONNX op (an escape hatch: prefer adding a word to the vocabulary). The caller states
   * the outputs' dtypes and shapes; ORT checks them at load.
   */
  op(opType: string, inputs: readonly (Tensor | undefined)[], outputs: readonly { dtype: DType; shape: Shape }[], attrs: Record<string, Attr> = {}, domain = ''): Tensor[] {
    return this.emit(opType, inputs, outputs, attrs, domain);
  }

  // ---- float32 islands in float16 graphs ----

  private inFloat32(x: Tensor, fn: (x32: Tensor) => Tensor): Tensor {
    if (x.dtype !== 'float16') return fn(x);
    return this.castTo(fn(this.castTo(x, 'float32')), 'float16');
  }

  /** A float16 weight as float32: a float32 copy of the initializer (from the source data), or a Cast. */
  private asFloat32(w: Tensor): Tensor {
    if (w.dtype === 'float32') return w;
    return this.variant(w, { key: 'f32', dtype: 'float32' }) ?? this.castTo(w, 'float32');
  }

  /** A [C] weight as float32 [C, 1, …, 1] for broadcasting over [N, C, ...]. */
  private perChannel(w: Tensor, rank: number): Tensor {
    const c = w.shape[0]!;
    const spec = [typeof c === 'number' ? c : -1, ...new Array<number>(rank - 2).fill(1)];
    const dims = typeof c === 'number' ? spec : undefined;
    const fromInit = dims && this.variant(w, { key: `c${rank}.f32`, dims, dtype: 'float32' });
    return fromInit ?? this.reshape(this.asFloat32(w), spec);
  }
}

/** Row-major [rows, cols] → [cols, rows], any element type. */
function transpose2d(rows: number, cols: number): (d: HostArray) => HostArray {
  return (d) => {
    const Ctor = d.constructor as new (n: number) => HostArray;
    const out = new Ctor(d.length);
    const src = d as unknown as number[];
    const dst = out as unknown as number[];
    const tile = 64;
    for (let r0 = 0; r0 < rows; r0 += tile) {
      for (let c0 = 0; c0 < cols; c0 += tile) {
        const r1 = Math.min(r0 + tile, rows);
        const c1 = Math.min(c0 + tile, cols);
        for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c]!;
      }
    }
    return out;
  };
}
