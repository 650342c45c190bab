// The CLIP text transformer's configuration: transformers' CLIPTextConfig dict (text_encoder/
// config.json in a diffusers folder), read as plain data and checked, never assumed to be SDXL's.
import { EngineError } from '../errors.js';

/** The activation of the MLP between fc1 and fc2 (transformers' ACT2FN names we support). */
export type ClipActivation = 'quick_gelu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'gelu_fast' | 'relu' | 'silu' | 'swish';

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  numHiddenLayers: number;
  maxPositionEmbeddings: number;
  hiddenAct: ClipActivation;
  layerNormEps: number;
  /**
   * Decides the pooled token: 2 (the legacy value most released configs carry) pools at the largest
   * token id, anything else at the first position holding this id.
   */
  eosTokenId: number;
  /** Width of text_projection (CLIPTextModelWithProjection); undefined when the config has none. */
  projectionDim: number | undefined;
}

const ACTIVATIONS: readonly ClipActivation[] = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu', 'silu', 'swish'];

// transformers 4.40 CLIPTextConfig defaults, for keys a config.json leaves out.
const DEFAULTS = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  eos_token_id: 49407,
} as const;

function bad(message: string): never {
  throw new EngineError('bad_model_config', `CLIP text config: ${message}`);
}

function positiveInt(dict: Record<string, unknown>, key: keyof typeof DEFAULTS): number {
  const v = dict[key] ?? DEFAULTS[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads a transformers CLIPTextConfig dict (missing keys take transformers' defaults). */
export function parseClipTextConfig(dict: Record<string, unknown>): ClipTextConfig {
  // CLIPConfig (the two-tower model) nests the text tower's config.
  const text = dict['text_config'];
  if (text && typeof text === 'object' && dict['hidden_size'] === undefined) return parseClipTextConfig(text as Record<string, unknown>);

  const act = dict['hidden_act'] ?? DEFAULTS.hidden_act;
  if (typeof act !== 'string' || !ACTIVATIONS.includes(act as ClipActivation)) {
    bad(`hidden_act ${JSON.stringify(act)} is not supported (one of ${ACTIVATIONS.join(', ')})`);
  }
  const eps = dict['layer_norm_eps'] ?? DEFAULTS.layer_norm_eps;
  if (typeof eps !== 'number' || !(eps > 0)) bad(`layer_norm_eps must be a positive number, got ${JSON.stringify(eps)}`);
  const eos = dict['eos_token_id'] ?? DEFAULTS.eos_token_id;
  if (typeof eos !== 'number' || !Number.isInteger(eos)) bad(`eos_token_id must be an integer, got ${JSON.stringify(eos)}`);
  const proj = dict['projection_dim'];
  if (proj !== undefined && proj !== null && (typeof proj !== 'number' || !Number.isInteger(proj) || proj <= 0)) {
    bad(`projection_dim must be a positive integer, got ${JSON.stringify(proj)}`);
  }

  const config: ClipTextConfig = {
    vocabSize: positiveInt(dict, 'vocab_size'),
    hiddenSize: positiveInt(dict, 'hidden_size'),
    intermediateSize: positiveInt(dict, 'intermediate_size'),
    numAttentionHeads: positiveInt(dict, 'num_attention_heads'),
    numHiddenLayers: positiveInt(dict, 'num_hidden_layers'),
    maxPositionEmbeddings: positiveInt(dict, 'max_position_embeddings'),
    hiddenAct: act as ClipActivation,
    layerNormEps: eps,
    eosTokenId: eos,
    projectionDim: typeof proj === 'number' ? proj : undefined,
  };
  if (config.hiddenSize % config.numAttentionHeads !== 0) {
    bad(`hidden_size ${config.hiddenSize} is not divisible by num_attention_heads ${config.numAttentionHeads}`);
  }
  return config;
}
