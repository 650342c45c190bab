// A CLIP text encoder ready to run: the clip-text graph compiled once (cached on disk by weights,
// config and options), an ORT session in the worker thread, and encode(ids) → host tensors.
import { EngineError } from '../errors.js';
import { openWeights } from '../formats/weights.js';
import {
  compileCached, createSession, encodeModel, fingerprintFiles, openHeld,
  type CompiledModel, type ExecutionProvider, type FloatDType, type HostTensor, type OrtWorker, type Session,
} from '../onnx/index.js';
import type { ScaledLora } from '../lora/apply.js';
import { emptyLoraFeeds, loraSlotsOf, runtimeLoraFeeds, type LoraSlot, type StackMemo } from '../lora/runtime.js';
import { parseClipTextConfig, type ClipTextConfig } from './clip-config.js';
import { buildClipTextGraph, type ClipTextOutput, type ClipTextWeights } from './clip-text.js';
import { defaultExecutionProvider } from '../onnx/provider.js';

/** Token ids, row-major [batch, seqLen]. */
export type TokenIds = BigInt64Array | Int32Array | readonly number[];

/** One encode() call's results (float32, row-major); a field is present when its output was asked for. */
export interface ClipTextOutputs {
  batch: number;
  seqLen: number;
  /** Hidden size D. */
  hidden: number;
  /** hidden_states[-2], before the final norm: [B, S, D] (SDXL's prompt embeds). */
  penultimate?: Float32Array;
  /** last_hidden_state, after final_layer_norm: [B, S, D]. */
  lastHidden?: Float32Array;
  /** pooler_output: last_hidden_state at the pooled token: [B, D]. */
  pooled?: Float32Array;
  /** text_projection(pooled): [B, projection_dim] (SDXL's pooled prompt embeds). */
  textEmbeds?: Float32Array;
  /** The pooled token's position per row: [B]. */
  pooledIndex?: number[];
}

export interface ClipTextEncoderOptions {
  /** Compile cache directory (onnx/cache.ts). Without it the model is built in memory each load (small models only). */
  cacheDir?: string;
  /** Compute type; inputs and outputs stay int64 / float32 either way. Default float32. */
  dtype?: FloatDType;
  /** Default: whether the weights hold the projection. */
  withProjection?: boolean;
  /** Default: penultimate, last_hidden_state, pooled, and text_embeds with the projection. */
  outputs?: readonly ClipTextOutput[];
  /** Weight-name prefix of the transformer ('text_model.'). */
  prefix?: string;
  /** Name of the projection weight ('text_projection.weight'). */
  projectionKey?: string;
  /** Build with run-time LoRA branches on every Linear (setLoras then changes LoRAs without a rebuild). */
  loraSlots?: boolean;
  /** Identifies the weights in the cache key; default: a fingerprint of the weight file. */
  weightsHash?: string;
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  interOpThreads?: number;
  worker?: OrtWorker;
}

export interface ClipTextEncoder {
  readonly config: ClipTextConfig;
  readonly outputs: readonly ClipTextOutput[];
  /** Whether the compiled model came from the cache. */
  readonly cacheHit: boolean;
  encode(ids: TokenIds, batch: number, seqLen: number, signal?: AbortSignal): Promise<ClipTextOutputs>;
  /** The run-time LoRA slots (empty unless loaded with loraSlots). */
  readonly loraSlots: ReadonlyMap<string, LoraSlot>;
  /** The LoRAs later encodes apply, as branches (loraSlots builds only; [] for none); see UnetRunner.setLoras. */
  setLoras(loras: readonly ScaledLora[]): void;
  dispose(): Promise<void>;
}

type WeightsArg = string | (ClipTextWeights & { readonly path?: string });

/**
 * Loads a CLIP text encoder from a weight file (path, or an open view such as a key-mapped
 * single-file checkpoint) and its transformers config dict.
 */
export async function loadClipTextEncoder(
  weightsArg: WeightsArg,
  configDict: Record<string, unknown>,
  opts: ClipTextEncoderOptions = {},
): Promise<ClipTextEncoder> {
  const config = parseClipTextConfig(configDict);
  const ownFile = typeof weightsArg === 'string' ? openWeights(weightsArg) : undefined;
  const weights: ClipTextWeights & { readonly path?: string } = ownFile ?? (weightsArg as Exclude<WeightsArg, string>);
  let model: string | Uint8Array;
  let cacheHit = false;
  let compiled: CompiledModel | undefined;
  let outputs: ClipTextOutput[];
  try {
    const projectionKey = opts.projectionKey ?? 'text_projection.weight';
    const withProjection = opts.withProjection ?? weights.has(projectionKey);
    outputs = [...(opts.outputs ?? ['penultimate', 'last_hidden_state', 'pooled', ...(withProjection ? ['text_embeds' as const] : [])])];
    const graphOptions = {
      dtype: opts.dtype ?? 'float32', withProjection, outputs, prefix: opts.prefix ?? 'text_model.', projectionKey,
      ...(opts.loraSlots ? { loraSlots: true } : {}),
    };
    const build = (): ReturnType<typeof buildClipTextGraph> => buildClipTextGraph(configDict, weights, graphOptions);
    if (opts.cacheDir) {
      const weightsHash = opts.weightsHash ?? (weights.path ? await fingerprintFiles([weights.path]) : undefined);
      if (!weightsHash) throw new EngineError('bad_graph_options', 'loadClipTextEncoder: weights without a path need opts.weightsHash to be cached');
      compiled = await compileCached(opts.cacheDir, {
        net: 'clip-text', weightsHash, dtype: graphOptions.dtype, config: { config, ...graphOptions },
      }, build);
      model = compiled.modelPath;
      cacheHit = compiled.hit;
    } else {
      model = await encodeModel(build());
    }
  } finally {
    ownFile?.close();
  }

  const open = (m: string | Uint8Array, extra: { packedCopy?: string } = {}): Promise<Session> => createSession(m, {
    ...extra,
    executionProvider: opts.executionProvider ?? defaultExecutionProvider(),
    ...(opts.intraOpThreads !== undefined ? { intraOpThreads: opts.intraOpThreads } : {}),
    ...(opts.interOpThreads !== undefined ? { interOpThreads: opts.interOpThreads } : {}),
    ...(opts.worker ? { worker: opts.worker } : {}),
  });
  const session = compiled ? await openHeld(compiled, open) : await open(model);
  return new Encoder(config, outputs, cacheHit, session);
}

class Encoder implements ClipTextEncoder {
  readonly loraSlots: ReadonlyMap<string, LoraSlot>;
  private loraFeeds: Record<string, HostTensor>;
  private readonly stacks: StackMemo = new Map();

  constructor(
    readonly config: ClipTextConfig,
    readonly outputs: readonly ClipTextOutput[],
    readonly cacheHit: boolean,
    private readonly session: Session,
  ) {
    this.loraSlots = loraSlotsOf(session.inputs);
    this.loraFeeds = emptyLoraFeeds(this.loraSlots);
  }

  setLoras(loras: readonly ScaledLora[]): void {
    if (this.loraSlots.size === 0 && loras.some((l) => l.scale !== 0 && l.deltas.length > 0)) {
      throw new EngineError('lora_not_runtime', 'this text encoder was built without run-time LoRA slots (load it with loraSlots: true, or fuse the LoRAs with withLoras)');
    }
    this.loraFeeds = runtimeLoraFeeds(this.loraSlots, loras, this.stacks);
  }

  async encode(ids: TokenIds, batch: number, seqLen: number, signal?: AbortSignal): Promise<ClipTextOutputs> {
    const inputIds = this.checkIds(ids, batch, seqLen);
    const feeds = { input_ids: { dtype: 'int64', dims: [batch, seqLen], data: inputIds } as HostTensor, ...this.loraFeeds };
    const out = await this.session.run(feeds, signal ? { signal } : {});
    const result: ClipTextOutputs = { batch, seqLen, hidden: this.config.hiddenSize };
    const float = (name: ClipTextOutput): Float32Array | undefined => (out[name] ? floatData(out[name], name) : undefined);
    const penultimate = float('penultimate');
    const lastHidden = float('last_hidden_state');
    const pooled = float('pooled');
    const textEmbeds = float('text_embeds');
    if (penultimate) result.penultimate = penultimate;
    if (lastHidden) result.lastHidden = lastHidden;
    if (pooled) result.pooled = pooled;
    if (textEmbeds) result.textEmbeds = textEmbeds;
    const index = out['pooled_index'];
    if (index) result.pooledIndex = Array.from(index.data as BigInt64Array, Number);
    return result;
  }

  dispose(): Promise<void> {
    return this.session.dispose();
  }

  /** Ids as int64, after the checks ORT would otherwise fail on with less helpful words. */
  private checkIds(ids: TokenIds, batch: number, seqLen: number): BigInt64Array {
    const { vocabSize, maxPositionEmbeddings } = this.config;
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(seqLen) || seqLen < 1) {
      throw new EngineError('bad_token_ids', `CLIP text encoder: batch ${batch} × length ${seqLen} is not a valid input shape`);
    }
    if (seqLen > maxPositionEmbeddings) {
      throw new EngineError('bad_token_ids', `CLIP text encoder: ${seqLen} tokens exceed the model's ${maxPositionEmbeddings} positions; split the prompt into chunks`);
    }
    if (ids.length !== batch * seqLen) {
      throw new EngineError('bad_token_ids', `CLIP text encoder: ${ids.length} ids for batch ${batch} × length ${seqLen}`);
    }
    const data = ids instanceof BigInt64Array ? ids : BigInt64Array.from(ids as ArrayLike<number>, (v) => BigInt(v));
    for (const id of data) {
      if (id < 0n || id >= BigInt(vocabSize)) {
        throw new EngineError('bad_token_ids', `CLIP text encoder: token id ${id} is outside the vocabulary (0 … ${vocabSize - 1}): was the tokenizer made for this model?`);
      }
    }
    return data;
  }
}

function floatData(t: HostTensor, name: string): Float32Array {
  if (t.dtype !== 'float32') throw new EngineError('ort_bad_output', `CLIP text encoder: output ${name} is ${t.dtype}, expected float32`);
  return t.data as Float32Array;
}
