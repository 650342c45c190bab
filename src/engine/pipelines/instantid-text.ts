// Text conditioning for InstantID in its two modes: 'standard' (the basic pipeline: diffusers'
// encode_prompt, 77 tokens per tokenizer) and 'lpw' (the `_full` pipeline: weighted long prompts,
// tokenizer 1 for both encoders). Also reports the token ids each encoder was actually fed.
import { encodePromptLpw, encodePromptStandard, type PromptEmbeddings, type TextEncoderRunner } from '../text/encode.js';
import type { InstantIdNets } from './instantid-load.js';

export type PromptMode = 'standard' | 'lpw';

export interface TextConditioning extends PromptEmbeddings {
  /** Token ids as fed, by the goldens' names: tokenizer[_2].{prompt,negative}.input_ids (standard), {prompt,negative}.input_ids (lpw). */
  ids: Record<string, { dims: number[]; data: BigInt64Array }>;
}

/** An encoder that remembers the rows of ids it was given. */
function recording(inner: TextEncoderRunner, calls: BigInt64Array[][]): TextEncoderRunner {
  return {
    async encode(ids, batch, seqLen) {
      calls.push(Array.from({ length: batch }, (_, b) => ids.slice(b * seqLen, (b + 1) * seqLen)));
      return inner.encode(ids, batch, seqLen);
    },
  };
}

export async function encodeText(
  nets: Pick<InstantIdNets, 'tokenizer1' | 'tokenizer2' | 'encoder1' | 'encoder2' | 'forceZerosForEmptyPrompt'>,
  mode: PromptMode,
  prompt: string,
  negative: string | null | undefined,
): Promise<TextConditioning> {
  const ids: TextConditioning['ids'] = {};
  if (mode === 'lpw') {
    const out = await encodePromptLpw({ prompt, negative: negative ?? '' }, nets.tokenizer1, { encoder1: nets.encoder1, encoder2: nets.encoder2 });
    for (const side of ['prompt', 'negative'] as const) {
      const flat = out.tokens[side].chunks.flatMap((c) => c.ids);
      ids[`${side}.input_ids`] = { dims: [flat.length], data: BigInt64Array.from(flat, (v) => BigInt(v)) };
    }
    return { ...out, ids };
  }
  const calls1: BigInt64Array[][] = [];
  const calls2: BigInt64Array[][] = [];
  const out = await encodePromptStandard(
    { prompt, negative: negative ?? null },
    { tokenizer1: nets.tokenizer1, tokenizer2: nets.tokenizer2 },
    { encoder1: recording(nets.encoder1, calls1), encoder2: recording(nets.encoder2, calls2) },
    { forceZerosForEmptyPrompt: nets.forceZerosForEmptyPrompt },
  );
  for (const [name, calls] of [['tokenizer', calls1], ['tokenizer_2', calls2]] as const) {
    const rows = calls[0] ?? [];
    // Rows are [negative, prompt], or [prompt] alone when the negative is zeroed.
    const sides = rows.length === 2 ? ['negative', 'prompt'] : ['prompt'];
    rows.forEach((row, i) => {
      ids[`${name}.${sides[i]}.input_ids`] = { dims: [1, row.length], data: row };
    });
  }
  return { ...out, ids };
}
