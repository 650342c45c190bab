// Where the UNet, ControlNet and Resampler graphs get their parameters: a TensorSource (the formats'
// read interface: any weight file, several files merged, or a key-mapped view of a single-file
// checkpoint) read through a WeightScope that mirrors the torch module tree
// (`w.at('down_blocks.1').at('resnets.0').get('conv1.weight')`).
// Parameters load lazily, when the model is written, so a 10 GB UNet never sits in memory twice.
import { EngineError } from '../errors.js';
import type { TensorSource } from '../formats/keymaps/source.js';
import { openWeights, type WeightsFile } from '../formats/weights.js';
import type { GraphBuilder, Tensor, WeightData } from '../onnx/index.js';

/** The formats' read interface (WeightSource without names(); a WeightsFile or a model component fits). */
export type { TensorSource } from '../formats/keymaps/source.js';

/** One source over several (e.g. sharded diffusers weights, or a UNet plus an ip-adapter file); first match wins. */
export function mergeSources(sources: readonly TensorSource[]): TensorSource {
  const pick = (name: string): TensorSource => {
    const s = sources.find((x) => x.has(name));
    if (!s) throw new EngineError('missing_weight', `no weight file has ${name}`);
    return s;
  };
  return {
    has: (name) => sources.some((s) => s.has(name)),
    info: (name) => pick(name).info(name),
    read: (name) => pick(name).read(name),
    readFloat32: (name) => pick(name).readFloat32(name),
  };
}

/** The tensors of `source` under `prefix` (e.g. 'image_proj.'), named without it. */
export function prefixedSource(source: TensorSource, prefix: string): TensorSource {
  return {
    has: (name) => source.has(prefix + name),
    info: (name) => source.info(prefix + name),
    read: (name) => source.read(prefix + name),
    readFloat32: (name) => source.readFloat32(prefix + name),
  };
}

/**
 * A source that reads every tensor as float32 (F16 / BF16 upcast exactly) and says so in info(), so
 * a graph builds each parameter from float32 values whatever the file stores.
 */
export function float32Source(source: TensorSource): TensorSource {
  return {
    has: (name) => source.has(name),
    info: (name) => ({ dtype: 'F32', shape: [...source.info(name).shape] }),
    read: (name) => source.readFloat32(name),
    readFloat32: (name) => source.readFloat32(name),
  };
}

/** Opens weight files (safetensors or torch .bin) as one source; close them after the model is written. */
export function openSources(paths: readonly string[]): { source: TensorSource; files: WeightsFile[]; close(): void } {
  const files: WeightsFile[] = [];
  try {
    for (const p of paths) files.push(openWeights(p));
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  return { source: mergeSources(files), files, close: () => { for (const f of files) f.close(); } };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * A module of the network: `get('to_q.weight')` is the graph parameter for `<prefix>to_q.weight`.
 * Graph names carry `graphPrefix` too, so two nets (UNet + ControlNet) can share one graph.
 */
export class WeightScope {
  constructor(
    private readonly g: GraphBuilder,
    private readonly source: TensorSource,
    private readonly prefix = '',
    private readonly graphPrefix = '',
    private readonly made: Map<string, Tensor> = new Map(),
  ) {}

  /** The submodule `name` (e.g. 'resnets.0'). */
  at(name: string): WeightScope {
    return new WeightScope(this.g, this.source, `${this.prefix}${name}.`, this.graphPrefix, this.made);
  }

  /** The module's dotted path ('down_blocks.1.attentions.0'), as diffusers names it. */
  get path(): string {
    return this.prefix.replace(/\.$/, '');
  }

  has(name: string): boolean {
    return this.source.has(this.prefix + name);
  }

  shape(name: string): number[] {
    return this.source.info(this.prefix + name).shape;
  }

  /** The parameter `name`; `expected` checks its shape (a mismatch means the config does not fit the weights). */
  get(name: string, expected?: readonly number[]): Tensor {
    const full = this.prefix + name;
    const known = this.made.get(full);
    if (known) return known;
    if (!this.source.has(full)) {
      throw new EngineError('missing_weight', `the weights have no ${full}${expected ? ` (expected shape [${expected.join(', ')}])` : ''}: they do not fit this model's config`);
    }
    const { dtype, shape } = this.source.info(full);
    if (expected && !sameShape(shape, expected)) {
      throw new EngineError('weight_shape_mismatch', `${full} has shape [${shape.join(', ')}], the config needs [${expected.join(', ')}]`);
    }
    const wantHalf = this.g.float === 'float16' && dtype === 'F16';
    const load = (): WeightData => (wantHalf
      ? { dtype: 'float16', data: this.source.read(full) as Uint16Array }
      : this.source.readFloat32(full));
    const t = this.g.param(this.graphPrefix + full, shape, load);
    this.made.set(full, t);
    return t;
  }

  /** The parameter if the weights have it (optional biases). */
  maybe(name: string, expected?: readonly number[]): Tensor | undefined {
    return this.has(name) ? this.get(name, expected) : undefined;
  }
}
