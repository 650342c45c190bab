// The read-only view nets load weights through, whatever the file layout: a diffusers folder's
// weight file (or its shards), or one component of a single-file checkpoint renamed on the fly.
// Names are always the diffusers / transformers ones; values are read lazily, one tensor at a time.
import { EngineError } from '../../errors.js';
import type { Dtype, TensorData } from '../dtype.js';

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
}

/**
 * Read access to named tensors: all the nets' builders (WeightScope), the pipelines' views and
 * withLoras need. Views that cannot list their names (a prefix of a file, several files merged) are
 * TensorSources; everything else is a WeightSource.
 */
export interface TensorSource {
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor in its own dtype (F16/BF16 as raw Uint16 bits), C-contiguous. */
  read(name: string): TensorData;
  /** The tensor converted to float32 (F16/BF16 upcast exactly). */
  readFloat32(name: string): Float32Array;
}

/** A TensorSource that also lists its names (weight files, model components, renamed views). */
export interface WeightSource extends TensorSource {
  names(): string[];
}

/** A model config as its config.json spells it (diffusers or transformers keys). */
export type ModelConfig = Record<string, unknown>;

/** One model of a pipeline: its config and its weights under diffusers / transformers names. */
export interface ModelComponent {
  config: ModelConfig;
  weights: WeightSource;
  /**
   * Config keys not read from the files but filled in by convention (single-file checkpoints: what
   * the tensor shapes cannot tell, e.g. attention heads or norm groups). Empty for diffusers folders.
   */
  assumed: string[];
}

export type ComponentName = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';
export const SDXL_COMPONENTS: readonly ComponentName[] = ['unet', 'vae', 'text_encoder', 'text_encoder_2'];

/** How a mapped tensor is made from its source tensor. */
export type Derivation =
  | { kind: 'copy' }
  /** A 1×1 conv kernel [O, I, 1, 1] read as a Linear weight [O, I] (same bytes). */
  | { kind: 'squeeze' }
  /** Rows [start, end) of the first axis (OpenCLIP's fused in_proj split into q, k, v). */
  | { kind: 'rows'; start: number; end: number }
  /** A 2-D matrix transposed (OpenCLIP's text_projection is applied as x·P, a Linear holds Pᵀ). */
  | { kind: 'transpose' };

export interface MappedTensor {
  source: string;
  derive: Derivation;
}

/** The raw file a mapping reads from (SafetensorsFile and openWeights' WeightsFile both fit). */
export interface RawTensors {
  readonly path: string;
  info(name: string): { dtype: Dtype; shape: readonly number[] };
  read(name: string): TensorData;
  readFloat32(name: string): Float32Array;
}

/** Renamed (and, where the layouts differ, reshaped) tensors of one raw file, read on demand. */
export class MappedWeights implements WeightSource {
  /** The last fused tensor read, so q, k and v of one in_proj read the file once. */
  private lastRead: { key: string; data: TensorData } | undefined;

  constructor(private readonly file: RawTensors, private readonly table: ReadonlyMap<string, MappedTensor>) {}

  names(): string[] {
    return [...this.table.keys()];
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  /** The checkpoint name a mapped tensor comes from. */
  sourceOf(name: string): string {
    return this.entry(name).source;
  }

  info(name: string): TensorInfo {
    const { source, derive } = this.entry(name);
    const { dtype, shape } = this.file.info(source);
    return { dtype, shape: derivedShape(shape, derive, `${source} (for ${name})`) };
  }

  read(name: string): TensorData {
    return this.derived(name, 'raw');
  }

  readFloat32(name: string): Float32Array {
    return this.derived(name, 'float32') as Float32Array;
  }

  /** Reads the source (raw or as float32) and applies the derivation in that element type. */
  private derived(name: string, as: 'raw' | 'float32'): TensorData {
    const { source, derive } = this.entry(name);
    const read = (n: string): TensorData => (as === 'raw' ? this.file.read(n) : this.file.readFloat32(n));
    const shape = this.file.info(source).shape;
    derivedShape(shape, derive, `${source} (for ${name})`);
    switch (derive.kind) {
      case 'copy':
      case 'squeeze':
        return read(source);
      case 'rows': {
        // q, k and v of one in_proj come one after another: read the fused tensor once.
        const key = `${as}:${source}`;
        if (this.lastRead?.key !== key) this.lastRead = { key, data: read(source) };
        const rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
        return this.lastRead.data.slice(derive.start * rowSize, derive.end * rowSize);
      }
      case 'transpose': {
        const [rows, cols] = shape as [number, number];
        const src = read(source);
        const out = new (src.constructor as new (n: number) => TensorData)(src.length);
        const from = src as unknown as number[];
        const to = out as unknown as number[];
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) to[c * rows + r] = from[r * cols + c]!;
        return out;
      }
    }
  }

  private entry(name: string): MappedTensor {
    const e = this.table.get(name);
    if (!e) throw new EngineError('missing_tensor', `${this.file.path} has no tensor that maps to ${name}`);
    return e;
  }
}

function derivedShape(shape: readonly number[], derive: Derivation, what: string): number[] {
  const bad = (why: string): never => {
    throw new EngineError('bad_checkpoint', `${what} has shape [${shape.join(', ')}]: ${why}`);
  };
  switch (derive.kind) {
    case 'copy':
      return [...shape];
    case 'squeeze':
      if (shape.length === 2) return [...shape];
      if (shape.length !== 4 || shape[2] !== 1 || shape[3] !== 1) return bad('expected a 1×1 conv kernel or a matrix');
      return [shape[0]!, shape[1]!];
    case 'rows':
      if (shape.length < 1 || derive.end > shape[0]!) return bad(`rows ${derive.start}..${derive.end} do not exist`);
      return [derive.end - derive.start, ...shape.slice(1)];
    case 'transpose':
      if (shape.length !== 2) return bad('expected a matrix');
      return [shape[1]!, shape[0]!];
  }
}

/** A source with some names renamed (legacy spellings) and nothing else changed. */
export function renamedSource(inner: WeightSource, rename: (name: string) => string): WeightSource {
  const byNew = new Map<string, string>();
  for (const n of inner.names()) byNew.set(rename(n), n);
  const orig = (name: string): string => {
    const o = byNew.get(name);
    if (o === undefined) throw new EngineError('missing_tensor', `no tensor named ${name}`);
    return o;
  };
  return {
    names: () => [...byNew.keys()],
    has: (name) => byNew.has(name),
    info: (name) => inner.info(orig(name)),
    read: (name) => inner.read(orig(name)),
    readFloat32: (name) => inner.readFloat32(orig(name)),
  };
}

/** An SDXL model as the nets load it, whichever files it came from. */
export interface SdxlModel {
  /** The checkpoint file or the diffusers folder. */
  readonly path: string;
  readonly layout: 'single-file' | 'diffusers';
  readonly unet: ModelComponent;
  readonly vae: ModelComponent;
  readonly text_encoder: ModelComponent;
  readonly text_encoder_2: ModelComponent;
  /** Tokenizer folders (vocab.json, merges.txt, …); a single-file checkpoint carries none. */
  readonly tokenizer?: string;
  readonly tokenizer_2?: string;
  /** scheduler/scheduler_config.json of a diffusers folder. */
  readonly scheduler?: ModelConfig;
  /** Closes the weight files; the components cannot be read afterwards. */
  close(): void;
}
