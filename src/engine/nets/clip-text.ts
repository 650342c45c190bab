// The CLIP text transformer (transformers' CLIPTextModel / CLIPTextModelWithProjection), top to
// bottom in the order the data flows:
//
//   input_ids ─▶ token_embedding + position_embedding
//             ─▶ N × [ layer_norm1 → causal self_attn → +residual → layer_norm2 → mlp(fc1, act, fc2) → +residual ]
//             ─▶ final_layer_norm ─▶ last_hidden_state ─▶ pooled token ─▶ text_projection (text_embeds)
//
// SDXL reads the penultimate hidden state (hidden_states[-2], before the final norm) of both
// encoders and the projected pooled token of the second. The sequence length is dynamic (standard
// 77-token prompts and the long-prompt path's unpadded chunks use the same graph); no attention mask
// is applied besides the causal one, as the SDXL pipelines call the encoders.
import { EngineError } from '../errors.js';
import { GraphBuilder, attr, type FloatDType, type ModelDef, type Tensor } from '../onnx/index.js';
import { parseClipTextConfig, type ClipActivation, type ClipTextConfig } from './clip-config.js';

export { parseClipTextConfig, type ClipTextConfig } from './clip-config.js';
export {
  loadClipTextEncoder, type ClipTextEncoder, type ClipTextEncoderOptions, type ClipTextOutputs, type TokenIds,
} from './clip-text-encoder.js';

/** What the graph can return (graph output names). */
export type ClipTextOutput = 'last_hidden_state' | 'penultimate' | 'pooled' | 'text_embeds' | 'pooled_index';

/** Read access to the weights under transformers' names (WeightsFile fits). */
export interface ClipTextWeights {
  has(name: string): boolean;
  info(name: string): { readonly shape: readonly number[] };
  readFloat32(name: string): Float32Array;
}

export interface ClipTextGraphOptions {
  dtype?: FloatDType;
  /** Adds text_projection (CLIPTextModelWithProjection); needed for 'text_embeds'. */
  withProjection?: boolean;
  outputs: readonly ClipTextOutput[];
  /** Prefix of the transformer's weights; 'text_model.' in transformers files. */
  prefix?: string;
  /** Name of the projection weight [projection_dim, hidden]; 'text_projection.weight' by default. */
  projectionKey?: string;
  /** Every Linear gets a run-time LoRA branch (engine/lora/runtime.ts), rank 0 when unused. */
  loraSlots?: boolean;
}

/** The CLIP text model as an ONNX graph: input `input_ids` int64 [B, S], the asked-for outputs. */
export function buildClipTextGraph(configDict: Record<string, unknown>, weights: ClipTextWeights, opts: ClipTextGraphOptions): ModelDef {
  const config = parseClipTextConfig(configDict);
  const wanted = new Set(opts.outputs);
  if (wanted.size === 0) throw new EngineError('bad_graph_options', 'CLIP text graph: ask for at least one output');
  if (wanted.has('text_embeds') && !opts.withProjection) {
    throw new EngineError('bad_graph_options', "CLIP text graph: 'text_embeds' needs withProjection (CLIPTextModelWithProjection)");
  }
  const g = new GraphBuilder({ name: 'clip-text', dtype: opts.dtype ?? 'float32', keepIoFloat32: true, ...(opts.loraSlots ? { loraSlots: () => true } : {}) });
  const w = weightReader(g, weights, opts.prefix ?? 'text_model.');
  const { hiddenSize: D, numHiddenLayers: L } = config;

  const inputIds = g.input('input_ids', ['B', 'S'], 'int64'); // [B, S]
  const positions = range(g, g.gather(g.shapeOf(inputIds), 1)); // [S]: 0 … S-1

  // embeddings
  const tokens = g.gather(w('embeddings.token_embedding.weight', [config.vocabSize, D]), inputIds); // [B, S, D]
  const places = g.gather(w('embeddings.position_embedding.weight', [config.maxPositionEmbeddings, D]), positions); // [S, D]
  let h = g.add(tokens, places); // [B, S, D] = hidden_states[0]

  // encoder: a token attends to itself and the tokens before it
  const causal = lessOrEqual(g, g.unsqueeze(positions, [0]), g.unsqueeze(positions, [1])); // [S, S]: key ≤ query
  const needsLast = wanted.has('last_hidden_state') || wanted.has('pooled') || wanted.has('text_embeds') || wanted.has('pooled_index');
  const depth = needsLast ? L : L - 1; // the last layer only feeds the final norm
  let penultimate: Tensor | undefined = L === 1 ? h : undefined;
  for (let i = 0; i < depth; i++) {
    h = g.scope(`layers.${i}`, () => encoderLayer(g, h, (name, shape) => w(`encoder.layers.${i}.${name}`, shape), config, causal)); // [B, S, D]
    if (i === L - 2) penultimate = h; // hidden_states[-2]
  }
  if (wanted.has('penultimate')) g.output(penultimate!, 'penultimate');
  if (!needsLast) return g.build();

  const last = g.layerNorm(h, w('final_layer_norm.weight', [D]), w('final_layer_norm.bias', [D]), { eps: config.layerNormEps }); // [B, S, D]
  if (wanted.has('last_hidden_state')) g.output(last, 'last_hidden_state');

  // pooled: one token per sequence
  const index = pooledIndex(g, inputIds, config.eosTokenId); // [B, 1]
  if (wanted.has('pooled_index')) g.output(g.squeeze(index, [1]), 'pooled_index');
  const pooled = g.op('GatherND', [last, index], [{ dtype: last.dtype, shape: ['B', D] }], { batch_dims: attr.int(1) })[0]!; // [B, D]
  if (wanted.has('pooled')) g.output(pooled, 'pooled');
  if (wanted.has('text_embeds')) {
    const key = opts.projectionKey ?? 'text_projection.weight';
    const projection = weightReader(g, weights, '')(key, [expectProjectionDim(config, weights, key), D]);
    g.output(g.linear(pooled, projection), 'text_embeds'); // [B, P], no bias
  }
  return g.build();
}

type LayerWeights = (name: string, shape: readonly number[]) => Tensor;

/** CLIPEncoderLayer: pre-LN self-attention and MLP, each around a residual. */
function encoderLayer(g: GraphBuilder, h: Tensor, w: LayerWeights, config: ClipTextConfig, causal: Tensor): Tensor {
  const { hiddenSize: D, intermediateSize: F, layerNormEps: eps } = config;
  const proj = (name: string): [Tensor, Tensor] => [w(`self_attn.${name}.weight`, [D, D]), w(`self_attn.${name}.bias`, [D])];

  const x = g.layerNorm(h, w('layer_norm1.weight', [D]), w('layer_norm1.bias', [D]), { eps }); // [B, S, D]
  const q = g.linear(x, ...proj('q_proj')); // [B, S, D]
  const k = g.linear(x, ...proj('k_proj'));
  const v = g.linear(x, ...proj('v_proj'));
  const attn = g.attention(q, k, v, { heads: config.numAttentionHeads, mask: causal }); // [B, S, D]
  h = g.add(h, g.linear(attn, ...proj('out_proj')));

  const y = g.layerNorm(h, w('layer_norm2.weight', [D]), w('layer_norm2.bias', [D]), { eps });
  const up = g.linear(y, w('mlp.fc1.weight', [F, D]), w('mlp.fc1.bias', [F])); // [B, S, F]
  const down = g.linear(activation(g, up, config.hiddenAct), w('mlp.fc2.weight', [D, F]), w('mlp.fc2.bias', [D])); // [B, S, D]
  return g.add(h, down);
}

function activation(g: GraphBuilder, x: Tensor, act: ClipActivation): Tensor {
  switch (act) {
    case 'quick_gelu': return g.quickGelu(x);
    case 'gelu': return g.gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast': return g.gelu(x, 'tanh');
    case 'silu':
    case 'swish': return g.silu(x);
    case 'relu': return g.op('Relu', [x], [{ dtype: x.dtype, shape: x.shape }])[0]!;
  }
}

/**
 * The pooled token's position per sequence, as transformers 4.40 takes it: with the legacy
 * eos_token_id 2, the first position of the largest id (the real vocabularies' eos is their largest
 * id); otherwise the first position holding eos_token_id (0 when there is none).
 */
function pooledIndex(g: GraphBuilder, inputIds: Tensor, eosTokenId: number): Tensor {
  const marks = eosTokenId === 2
    ? g.cast(inputIds, 'int32')
    : g.cast(g.op('Equal', [inputIds, g.constant(eosTokenId, { dtype: 'int64' })], [{ dtype: 'bool', shape: inputIds.shape }])[0]!, 'int32'); // [B, S]
  return g.op('ArgMax', [marks], [{ dtype: 'int64', shape: [inputIds.shape[0]!, 1] }], {
    axis: attr.int(1), keepdims: attr.int(1), select_last_index: attr.int(0),
  })[0]!; // [B, 1]
}

/** 0 … n-1 as int64 [S] (n: an int64 scalar). */
function range(g: GraphBuilder, n: Tensor): Tensor {
  const zero = g.constant(0, { dtype: 'int64', shape: [] });
  const one = g.constant(1, { dtype: 'int64', shape: [] });
  return g.op('Range', [zero, n, one], [{ dtype: 'int64', shape: ['S'] }])[0]!;
}

function lessOrEqual(g: GraphBuilder, a: Tensor, b: Tensor): Tensor {
  return g.op('LessOrEqual', [a, b], [{ dtype: 'bool', shape: ['S', 'S'] }])[0]!;
}

/** Declares weights by name, checking each file shape against the one the config implies. */
function weightReader(g: GraphBuilder, weights: ClipTextWeights, prefix: string): LayerWeights {
  return (name, shape) => {
    const key = `${prefix}${name}`;
    if (!weights.has(key)) throw new EngineError('missing_tensor', `CLIP text weights: ${key} is missing`);
    const actual = weights.info(key).shape;
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new EngineError('bad_weights',
        `CLIP text weights: ${key} is [${actual.join(', ')}], the config implies [${shape.join(', ')}]: do the weights belong to this config?`);
    }
    return g.param(key, shape, () => weights.readFloat32(key));
  };
}

function expectProjectionDim(config: ClipTextConfig, weights: ClipTextWeights, key: string): number {
  if (config.projectionDim !== undefined) return config.projectionDim;
  if (!weights.has(key)) throw new EngineError('missing_tensor', `CLIP text weights: ${key} is missing (is this a CLIPTextModelWithProjection?)`);
  return weights.info(key).shape[0]!;
}
