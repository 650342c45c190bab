// The graph builder's core: tensor handles, inputs/outputs, initializers (eager or lazily loaded),
// constants and node emission. The vocabulary (ops-tensor.ts, graph.ts) is written on top of this;
// nothing here knows protobuf (serialize.ts turns a ModelDef into bytes).
import {
  DTYPE_BYTES, ONNX_DATA_TYPE, convertFloat, dtypeOfArray, fromNumbers, isFloat, numel,
  type DType, type FloatDType, type HostArray, type HostTensor,
} from './dtype.js';
import { formatShape, isStatic, type Dim, type Shape } from './shape.js';

/** Bump when the emitted graphs change for the same inputs: it is part of the compile-cache key. */
export const GRAPH_BUILDER_VERSION = 1;

/** A value in the graph: a name, an element type and a shape (numbers where static). */
export class Tensor {
  constructor(
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The builder that made it; tensors never cross graphs. */
    readonly owner: object,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

export type Attr =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'ints'; readonly value: readonly number[] };

export const attr = {
  float: (value: number): Attr => ({ kind: 'float', value }),
  int: (value: number): Attr => ({ kind: 'int', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
  floats: (value: readonly number[]): Attr => ({ kind: 'floats', value }),
  ints: (value: readonly number[]): Attr => ({ kind: 'ints', value }),
};

export interface NodeDef {
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  /** '' marks an omitted optional input. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export interface ValueDef {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export interface InitializerDef {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly byteLength: number;
  /** Produces the data in `dtype`; called once, at serialization, so big weights load one at a time. */
  load(): Promise<HostArray>;
}

/** Everything serialize.ts needs; produced by GraphBuilder.build(). */
export interface ModelDef {
  readonly name: string;
  readonly opsets: readonly { domain: string; version: number }[];
  readonly nodes: readonly NodeDef[];
  readonly inputs: readonly ValueDef[];
  readonly outputs: readonly ValueDef[];
  readonly initializers: readonly InitializerDef[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Weight data: float32 values, or a host tensor (fp16 bits, int64 …) whose dtype says what it holds. */
export type WeightData = Float32Array | Pick<HostTensor, 'dtype' | 'data'>;
/** Weights given now, or a loader called when the model is written (so large models never sit in memory twice). */
export type WeightSource = WeightData | (() => WeightData | Promise<WeightData>);

/** How GraphBuilder.attention() is written into the graph (BuilderOptions.attention). */
export type AttentionMode = 'plain' | 'fused';

export interface BuilderOptions {
  name?: string;
  /** Compute type of float tensors and parameters. float16 keeps norms, softmax and resize in float32. */
  dtype?: FloatDType;
  /** With dtype float16: declare float inputs/outputs as float32 and cast at the edges. */
  keepIoFloat32?: boolean;
  /** ai.onnx opset; 21 by default (LayerNormalization ≥17, Gelu ≥20). */
  opset?: number;
  /**
   * How attention() is written: 'plain' MatMul/Softmax/MatMul (the whole [B, H, Sq, Sk] score matrix
   * at once), 'fused' com.microsoft.MultiHeadAttention (one kernel; on the CPU EP it runs blockwise
   * without the score matrix when there is no mask; a mask is passed as its 4-D attention_bias).
   * Default 'plain', or 'fused' with fusedAttention.
   */
  attention?: AttentionMode;
  /** Older spelling of attention: 'fused'. */
  fusedAttention?: boolean;
  /**
   * Linear weights (by initializer name) that get a low-rank LoRA branch fed at run time:
   * y = x·Wᵀ + b + ((x·Dᵀ) ⊙ s)·Uᵀ with inputs D = LORA_INPUT.down(name) [r, in], U = LORA_INPUT.up(name)
   * [out, r] and s = LORA_INPUT.scale(name) [r], r symbolic (0 when no LoRA patches the layer).
   * See engine/lora/runtime.ts.
   */
  loraSlots?: (weightName: string) => boolean;
  metadata?: Record<string, string>;
}

/** Graph input names of a linear's LoRA branch (BuilderOptions.loraSlots). */
export const LORA_INPUT = {
  down: (weight: string): string => `${weight}#lora_down`,
  up: (weight: string): string => `${weight}#lora_up`,
  scale: (weight: string): string => `${weight}#lora_scale`,
  /** The weight a branch input belongs to and which one it is, or undefined for other inputs. */
  parse(input: string): { weight: string; factor: 'down' | 'up' | 'scale' } | undefined {
    const m = /^(.*)#lora_(down|up|scale)$/.exec(input);
    return m ? { weight: m[1]!, factor: m[2] as 'down' | 'up' | 'scale' } : undefined;
  },
};

interface InitRecord {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly raw: () => Promise<{ dtype: DType; data: HostArray }>;
  /** Layout changes applied to the raw data before the dtype conversion (e.g. a transpose). */
  readonly transforms: readonly ((data: HostArray) => HostArray)[];
}

function toRaw(w: WeightData): { dtype: DType; data: HostArray } {
  return w instanceof Float32Array ? { dtype: 'float32', data: w } : { dtype: w.dtype, data: w.data };
}

async function loadRecord(r: InitRecord): Promise<HostArray> {
  const raw = await r.raw();
  let data = raw.data;
  if (data.length !== numel(r.dims)) {
    throw new Error(`initializer ${r.name}: ${data.length} values for shape ${formatShape(r.dims)}`);
  }
  for (const t of r.transforms) data = t(data);
  if (raw.dtype === r.dtype) return data;
  if (isFloat(raw.dtype) && isFloat(r.dtype)) return convertFloat(data as Float32Array | Uint16Array, raw.dtype, r.dtype);
  throw new Error(`initializer ${r.name}: cannot convert ${raw.dtype} data to ${r.dtype}`);
}

export class GraphCore {
  /** The float type the graph computes in. */
  readonly float: FloatDType;
  protected readonly options: Required<Omit<BuilderOptions, 'metadata' | 'fusedAttention' | 'loraSlots'>> & { metadata: Record<string, string> };
  /** BuilderOptions.loraSlots. */
  protected readonly loraSlots: ((weightName: string) => boolean) | undefined;
  private readonly nodes: NodeDef[] = [];
  private readonly inputs: ValueDef[] = [];
  private readonly outputs: ValueDef[] = [];
  private readonly inits = new Map<string, InitRecord>();
  private readonly constants = new Map<string, Tensor>();
  private readonly variants = new Map<string, Tensor>();
  private readonly names = new Set<string>();
  private readonly domains = new Set<string>();
  private readonly scopes: string[] = [];
  private counter = 0;

  constructor(options: BuilderOptions = {}) {
    this.float = options.dtype ?? 'float32';
    this.options = {
      name: options.name ?? 'likeness',
      dtype: this.float,
      keepIoFloat32: options.keepIoFloat32 ?? false,
      opset: options.opset ?? 21,
      attention: options.attention ?? (options.fusedAttention ? 'fused' : 'plain'),
      metadata: { ...(options.metadata ?? {}) },
    };
    this.loraSlots = options.loraSlots;
  }

  /** A graph input. Float inputs take the graph's float type unless `dtype` says otherwise. */
  input(name: string, shape: Shape, dtype?: DType): Tensor {
    this.claim(name);
    const wanted = dtype ?? this.float;
    const declared = wanted === 'float16' && this.options.keepIoFloat32 && dtype === undefined ? 'float32' : wanted;
    this.inputs.push({ name, dtype: declared, shape: [...shape] });
    const t = new Tensor(name, declared, [...shape], this);
    return declared === wanted ? t : this.castTo(t, wanted);
  }

  /** Marks `t` as the graph output `name` (float16 outputs become float32 with keepIoFloat32). */
  output(t: Tensor, name: string): void {
    this.own(t);
    this.claim(name);
    const dtype = t.dtype === 'float16' && this.options.keepIoFloat32 ? 'float32' : t.dtype;
    if (dtype === t.dtype) this.nodes.push(this.nodeDef('Identity', '', [t.name], [name], {}));
    else this.nodes.push(this.nodeDef('Cast', '', [t.name], [name], { to: attr.int(onnxType(dtype)) }));
    this.outputs.push({ name, dtype, shape: t.shape });
  }

  /**
   * A weight, by its checkpoint name. Float weights are stored in the graph's float type
   * (converted at write time); pass `dtype` for anything else (int64 tables, fp32-pinned weights).
   */
  param(name: string, shape: readonly number[], source: WeightSource, dtype?: DType): Tensor {
    this.claim(name);
    const raw = typeof source === 'function' ? async () => toRaw(await source()) : async () => toRaw(source);
    let target = dtype;
    if (target === undefined) {
      const srcType = typeof source === 'function' ? 'float32' : toRaw(source).dtype;
      target = isFloat(srcType) ? this.float : srcType;
    }
    if (typeof source !== 'function' && toRaw(source).data.length !== numel(shape)) {
      throw new Error(`param ${name}: ${toRaw(source).data.length} values for shape ${formatShape(shape)}`);
    }
    this.inits.set(name, { name, dtype: target, dims: [...shape], raw, transforms: [] });
    return new Tensor(name, target, [...shape], this);
  }

  /** A small constant (deduplicated). Numbers default to the graph's float type. */
  constant(values: number | readonly number[] | HostArray, options: { dtype?: DType; shape?: readonly number[] } = {}): Tensor {
    const data: HostArray = typeof values === 'number' || Array.isArray(values)
      ? fromNumbers(options.dtype ?? this.float, typeof values === 'number' ? [values] : (values as readonly number[]))
      : (values as HostArray);
    const dtype = options.dtype ?? (typeof values === 'number' || Array.isArray(values) ? this.float : dtypeOfArray(data));
    const shape = options.shape ?? (typeof values === 'number' ? [] : [data.length]);
    if (numel(shape) !== data.length) throw new Error(`constant: ${data.length} values for shape ${formatShape(shape)}`);
    const key = `${dtype}|${shape.join(',')}|${data.length <= 64 ? Array.from(data as ArrayLike<number | bigint>).join(',') : `#${this.counter}`}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = this.fresh('const');
    this.inits.set(name, { name, dtype, dims: [...shape], raw: async () => ({ dtype, data }), transforms: [] });
    const t = new Tensor(name, dtype, [...shape], this);
    this.constants.set(key, t);
    return t;
  }

  /** An int64 vector constant (shapes, axes, indices). */
  ints(values: readonly number[]): Tensor {
    return this.constant(values, { dtype: 'int64' });
  }

  /** Runs `fn` with node names prefixed by `name/` (readable names in ORT errors and profiles). */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** The finished model description. Initializers no node reads are dropped. */
  build(): ModelDef {
    if (this.outputs.length === 0) throw new Error('graph has no outputs');
    const used = new Set<string>();
    for (const n of this.nodes) for (const i of n.inputs) used.add(i);
    const initializers: InitializerDef[] = [];
    for (const r of this.inits.values()) {
      if (!used.has(r.name)) continue;
      initializers.push({
        name: r.name,
        dtype: r.dtype,
        dims: r.dims,
        byteLength: numel(r.dims) * DTYPE_BYTES[r.dtype],
        load: () => loadRecord(r),
      });
    }
    const opsets = [{ domain: '', version: this.options.opset }];
    for (const d of this.domains) opsets.push({ domain: d, version: 1 });
    return {
      name: this.options.name,
      opsets,
      nodes: [...this.nodes],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      initializers,
      metadata: { ...this.options.metadata, builder_version: String(GRAPH_BUILDER_VERSION), dtype: this.float },
    };
  }

  /** Number of nodes emitted so far. */
  get nodeCount(): number {
    return this.nodes.length;
  }

  // ---- for the vocabulary ----

  /** Emits one node; returns its outputs as tensors. */
  protected emit(
    opType: string,
    inputs: readonly (Tensor | undefined)[],
    outputs: readonly { dtype: DType; shape: Shape }[],
    attrs: Record<string, Attr> = {},
    domain = '',
  ): Tensor[] {
    for (const t of inputs) if (t) this.own(t);
    if (domain !== '') this.domains.add(domain);
    const base = this.fresh(opType);
    const names = outputs.length === 1 ? [base] : outputs.map((_, i) => `${base}_${i}`);
    for (const n of names) this.names.add(n);
    this.nodes.push(this.nodeDef(opType, domain, inputs.map((t) => t?.name ?? ''), names, attrs, base));
    return outputs.map((o, i) => new Tensor(names[i]!, o.dtype, [...o.shape], this));
  }

  protected emit1(opType: string, inputs: readonly (Tensor | undefined)[], dtype: DType, shape: Shape, attrs: Record<string, Attr> = {}, domain = ''): Tensor {
    return this.emit(opType, inputs, [{ dtype, shape }], attrs, domain)[0]!;
  }

  protected castTo(x: Tensor, dtype: DType): Tensor {
    if (x.dtype === dtype) return x;
    return this.emit1('Cast', [x], dtype, x.shape, { to: attr.int(onnxType(dtype)) });
  }

  /**
   * A copy of initializer `t` with another dtype, shape or layout (no node, no extra memory: the
   * transform runs when the model is written). Undefined when `t` is not an initializer.
   */
  protected variant(t: Tensor, change: { key: string; dtype?: DType; dims?: readonly number[]; transform?: (d: HostArray) => HostArray }): Tensor | undefined {
    const r = this.inits.get(t.name);
    if (!r) return undefined;
    const name = `${t.name}::${change.key}`;
    const known = this.variants.get(name);
    if (known) return known;
    const dims = change.dims ?? r.dims;
    if (numel(dims) !== numel(r.dims)) throw new Error(`variant ${name}: shape ${formatShape(dims)} does not fit ${formatShape(r.dims)}`);
    const dtype = change.dtype ?? r.dtype;
    this.inits.set(name, { name, dtype, dims, raw: r.raw, transforms: change.transform ? [...r.transforms, change.transform] : r.transforms });
    const v = new Tensor(name, dtype, [...dims], this);
    this.variants.set(name, v);
    return v;
  }

  protected staticDims(t: Tensor, what: string): readonly number[] {
    if (!isStatic(t.shape)) throw new Error(`${what}: ${t} needs a static shape`);
    return t.shape;
  }

  protected own(t: Tensor): void {
    if (t.owner !== this) throw new Error(`tensor ${t.name} belongs to another graph`);
  }

  private fresh(hint: string): string {
    const prefix = this.scopes.length > 0 ? `${this.scopes.join('/')}/` : '';
    let name: string;
    do name = `${prefix}${hint}_${this.counter++}`; while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private claim(name: string): void {
    if (this.names.has(name) || this.inits.has(name)) throw new Error(`name ${name} is already used in this graph`);
    this.names.add(name);
  }

  private nodeDef(opType: string, domain: string, inputs: string[], outputs: string[], attrs: Record<string, Attr>, name?: string): NodeDef {
    while (inputs.length > 0 && inputs[inputs.length - 1] === '') inputs.pop();
    return { opType, domain, name: name ?? `${opType}_${outputs[0]}`, inputs, outputs, attrs };
  }
}

export function onnxType(dtype: DType): number {
  return ONNX_DATA_TYPE[dtype];
}

export type { Dim, Shape };
