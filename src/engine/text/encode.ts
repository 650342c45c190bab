// (prompt, negative) → SDXL text conditioning, in the two modes the engine offers. The networks are
// plugged in through TextEncoderRunner; everything here is token bookkeeping and plain arithmetic.
//
// Standard (instantid.md §8.1, diffusers' StableDiffusionXLPipeline.encode_prompt): each tokenizer pads
// and truncates to 77, each encoder's penultimate hidden states are concatenated on features →
// [1, 77, h1 + h2]; pooled = encoder 2's text_embeds. A missing negative (undefined/null) is zeros when
// the model config says force_zeros_for_empty_prompt; an empty string "" is encoded like any text.
//
// Long-prompt weighting (§8.2, InstantID `_full` LongPromptWeight.get_weighted_text_embeddings_sdxl):
// prompt-weighting.ts builds aligned chunks of tokenizer-1 ids; each chunk goes through BOTH encoders,
// token rows with weight w ≠ 1 become e_last + (e − e_last)·w where e_last is that chunk's own final
// (eos) row, chunks are concatenated along the sequence → [1, L, h1 + h2] with L varying per request;
// pooled = encoder 2's text_embeds of the LAST chunk only.
import { EngineError } from '../errors.js';
import type { ClipTokenizer } from './clip-tokenizer.js';
import { buildLpwTokens, type LpwTokens } from './prompt-weighting.js';

/**
 * One CLIP text encoder as the nets provide it (nets/clip-text-encoder.ts's ClipTextEncoder fits as is).
 * `ids` is int64 [batch, seqLen] (seqLen ≤ the model's max_position_embeddings, positions 0..seqLen−1,
 * no attention mask: padding is attended to, as the SDXL pipelines run it).
 */
export interface TextEncoderRunner {
  encode(ids: BigInt64Array, batch: number, seqLen: number): Promise<TextEncoderOutput>;
  /** Releases sessions/weights, if the runner holds any. */
  dispose?(): void | Promise<void>;
}

export interface TextEncoderOutput {
  /** hidden_states[−2]: the input of the last layer, before the final layer norm. [batch, seqLen, hidden]. Required. */
  penultimate?: Float32Array;
  /**
   * text_embeds, required from encoder 2 (CLIPTextModelWithProjection): final layer norm at the pooled
   * token, then text_projection. [batch, projectionDim]. The pooled token is transformers' choice: with
   * the legacy config eos_token_id == 2, the first position of the LARGEST id; otherwise the first eos.
   */
  textEmbeds?: Float32Array;
  /** Feature size of `penultimate`. */
  hidden: number;
}

export interface TextEncoders {
  /** CLIP ViT-L (SDXL text_encoder). */
  encoder1: TextEncoderRunner;
  /** OpenCLIP bigG with projection (SDXL text_encoder_2): also gives the pooled embedding. */
  encoder2: TextEncoderRunner;
}

/** What the UNet takes; order for CFG batching is [negative, prompt], left to the pipeline. */
export interface PromptEmbeddings {
  /** [1, seqLen, dim] */
  promptEmbeds: Float32Array;
  negativePromptEmbeds: Float32Array;
  /** [1, pooledDim] */
  pooledPromptEmbeds: Float32Array;
  negativePooledPromptEmbeds: Float32Array;
  /** 77 in standard mode; 77·k + r + 2 in long-prompt mode. */
  seqLen: number;
  /** h1 + h2 (2048 for SDXL). */
  dim: number;
  pooledDim: number;
}

export interface PromptRequest {
  prompt: string;
  /** Encoder 2's prompt (standard mode), or appended after a space (long-prompt mode, as the reference does). */
  prompt2?: string;
  negative?: string | null;
  negative2?: string;
}

function toInt64(rows: readonly (readonly number[])[]): BigInt64Array {
  const out = new BigInt64Array(rows.reduce((n, r) => n + r.length, 0));
  let k = 0;
  for (const row of rows) for (const id of row) out[k++] = BigInt(id);
  return out;
}

/** Runs one encoder and checks that what came back has the promised shape. */
async function run(
  encoder: TextEncoderRunner,
  which: string,
  rows: readonly (readonly number[])[],
  needPooled: boolean,
): Promise<{ penultimate: Float32Array; hidden: number; pooled?: Float32Array }> {
  const batch = rows.length;
  const seqLen = rows[0]!.length;
  const out = await encoder.encode(toInt64(rows), batch, seqLen);
  const { penultimate, textEmbeds, hidden } = out;
  if (!penultimate || !(hidden > 0) || penultimate.length !== batch * seqLen * hidden) {
    throw new EngineError('text_encoder_output', `${which} returned ${penultimate?.length ?? 'no'} penultimate values, expected ${batch}×${seqLen}×${hidden}`);
  }
  if (!needPooled) return { penultimate, hidden };
  if (!textEmbeds || textEmbeds.length === 0 || textEmbeds.length % batch !== 0) {
    throw new EngineError('text_encoder_output', `${which} returned no text_embeds for ${batch} sequences (is it a CLIPTextModelWithProjection?)`);
  }
  return { penultimate, hidden, pooled: textEmbeds };
}

/** Row b of two [batch, seqLen, h] tensors side by side on features → [seqLen, h1 + h2]. */
function concatFeatures(a: Float32Array, ha: number, b: Float32Array, hb: number, row: number, seqLen: number): Float32Array {
  const dim = ha + hb;
  const out = new Float32Array(seqLen * dim);
  for (let t = 0; t < seqLen; t++) {
    out.set(a.subarray((row * seqLen + t) * ha, (row * seqLen + t + 1) * ha), t * dim);
    out.set(b.subarray((row * seqLen + t) * hb, (row * seqLen + t + 1) * hb), t * dim + ha);
  }
  return out;
}

/**
 * In place on one chunk's embeddings [len, dim]: row j with weight w ≠ 1 becomes last + (row − last)·w,
 * with `last` the chunk's final row. Each step is rounded to float32 as torch computes it (the float16
 * weight promotes exactly to float32).
 */
export function applyChunkWeights(embeds: Float32Array, dim: number, weights: readonly number[]): void {
  const len = weights.length;
  if (embeds.length !== len * dim) throw new EngineError('text_encoder_output', `chunk of ${len} weights has ${embeds.length / dim} embedding rows`);
  const last = embeds.subarray((len - 1) * dim, len * dim);
  for (let j = 0; j < len; j++) {
    const w = weights[j]!;
    if (w === 1) continue;
    const row = embeds.subarray(j * dim, (j + 1) * dim);
    for (let d = 0; d < dim; d++) row[d] = last[d]! + Math.fround(Math.fround(row[d]! - last[d]!) * w);
  }
}

/** §8.1: 77-token encoding with both tokenizers; negative zeroed only when missing and the config says so. */
export async function encodePromptStandard(
  request: PromptRequest,
  tokenizers: { tokenizer1: ClipTokenizer; tokenizer2: ClipTokenizer },
  encoders: TextEncoders,
  options: { forceZerosForEmptyPrompt: boolean },
): Promise<PromptEmbeddings> {
  const { tokenizer1, tokenizer2 } = tokenizers;
  const seqLen = tokenizer1.modelMaxLength;
  if (tokenizer2.modelMaxLength !== seqLen) {
    throw new EngineError('bad_tokenizer', `the two tokenizers disagree on model_max_length (${seqLen} vs ${tokenizer2.modelMaxLength})`);
  }
  const zeroNegative = (request.negative === undefined || request.negative === null) && options.forceZerosForEmptyPrompt;
  const negative = request.negative || '';
  const texts1 = zeroNegative ? [request.prompt] : [negative, request.prompt];
  const texts2 = zeroNegative ? [request.prompt2 || request.prompt] : [request.negative2 || negative, request.prompt2 || request.prompt];
  const pad = { padding: 'max_length', maxLength: seqLen, truncation: true } as const;
  const out1 = await run(encoders.encoder1, 'text encoder 1', texts1.map((t) => tokenizer1.encode(t, pad)), false);
  const out2 = await run(encoders.encoder2, 'text encoder 2', texts2.map((t) => tokenizer2.encode(t, pad)), true);
  const dim = out1.hidden + out2.hidden;
  const pooled = out2.pooled!;
  const pooledDim = pooled.length / texts2.length;
  const promptRow = texts1.length - 1;
  return {
    promptEmbeds: concatFeatures(out1.penultimate, out1.hidden, out2.penultimate, out2.hidden, promptRow, seqLen),
    negativePromptEmbeds: zeroNegative ? new Float32Array(seqLen * dim) : concatFeatures(out1.penultimate, out1.hidden, out2.penultimate, out2.hidden, 0, seqLen),
    pooledPromptEmbeds: pooled.slice(promptRow * pooledDim, (promptRow + 1) * pooledDim),
    negativePooledPromptEmbeds: zeroNegative ? new Float32Array(pooledDim) : pooled.slice(0, pooledDim),
    seqLen,
    dim,
    pooledDim,
  };
}

/**
 * §8.2: weighted long-prompt encoding. Chunk i of the negative and of the prompt have the same length,
 * so they go through each encoder as one batch of two. Also returns the token bookkeeping.
 */
export async function encodePromptLpw(
  request: PromptRequest,
  tokenizer1: ClipTokenizer,
  encoders: TextEncoders,
): Promise<PromptEmbeddings & { tokens: LpwTokens }> {
  const tokens = buildLpwTokens(tokenizer1, request.prompt, request.negative ?? undefined, {
    ...(request.prompt2 !== undefined ? { prompt2: request.prompt2 } : {}),
    ...(request.negative2 !== undefined ? { negative2: request.negative2 } : {}),
  });
  const { prompt, negative } = tokens;
  const parts: { prompt: Float32Array; negative: Float32Array }[] = [];
  let pooled: Float32Array | undefined;
  let dim = 0;
  for (let i = 0; i < prompt.chunks.length; i++) {
    const rows = [negative.chunks[i]!.ids, prompt.chunks[i]!.ids];
    const len = rows[0]!.length;
    const out1 = await run(encoders.encoder1, 'text encoder 1', rows, false);
    const out2 = await run(encoders.encoder2, 'text encoder 2', rows, true);
    dim = out1.hidden + out2.hidden;
    const neg = concatFeatures(out1.penultimate, out1.hidden, out2.penultimate, out2.hidden, 0, len);
    const pos = concatFeatures(out1.penultimate, out1.hidden, out2.penultimate, out2.hidden, 1, len);
    applyChunkWeights(neg, dim, negative.chunks[i]!.weights);
    applyChunkWeights(pos, dim, prompt.chunks[i]!.weights);
    parts.push({ prompt: pos, negative: neg });
    pooled = out2.pooled; // the reference keeps overwriting it: the last chunk's wins
  }
  const seqLen = prompt.chunks.reduce((n, c) => n + c.ids.length, 0);
  const concat = (pick: (p: (typeof parts)[number]) => Float32Array) => {
    const out = new Float32Array(seqLen * dim);
    let offset = 0;
    for (const p of parts) {
      out.set(pick(p), offset);
      offset += pick(p).length;
    }
    return out;
  };
  const pooledDim = pooled!.length / 2;
  return {
    promptEmbeds: concat((p) => p.prompt),
    negativePromptEmbeds: concat((p) => p.negative),
    pooledPromptEmbeds: pooled!.slice(pooledDim),
    negativePooledPromptEmbeds: pooled!.slice(0, pooledDim),
    seqLen,
    dim,
    pooledDim,
    tokens,
  };
}
