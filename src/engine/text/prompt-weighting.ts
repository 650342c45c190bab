// Prompt weighting as InstantID's `_full` pipeline does it (its LongPromptWeight class, a copy of
// diffusers' community lpw_stable_diffusion_xl, whose parser is A1111's parse_prompt_attention):
//   "(text)" ×1.1, "[text]" ÷1.1, "(text:w)" ×w, nesting multiplies, "\(" "\)" "\[" "\]" "\\" are
//   literals, brackets still open at the end apply to everything after them, a stray ")" or "]" is text,
//   adjacent runs of exactly equal weight merge.
// Then every run is tokenized on its own with tokenizer 1 (for BOTH text encoders, as that code does),
// the shorter of prompt/negative is padded with eos, and the ids are cut into 75-token chunks that each
// get bos/eos; the last chunk is never padded, so the UNet's context length varies per request.
// Reference quirks kept on purpose (the goldens hold them): "BREAK" becomes a run of weight −1 whose
// text is then tokenized like any other ("break" with weight −1, no chunk break); a lone backslash
// vanishes; a weight boundary inside a word splits the word's tokens.
import { EngineError } from '../errors.js';
import { floatToHalf, halfToFloat } from '../formats/dtype.js';
import type { ClipTokenizer } from './clip-tokenizer.js';

export interface WeightedRun {
  text: string;
  /** float64, multiplied in the reference's order (e.g. ((x)) → 1.2100000000000002). */
  weight: number;
}

/** Tokens of one prompt before chunking: every token carries its run's weight. */
export interface WeightedTokens {
  ids: number[];
  weights: number[];
}

/** One encoder call's worth: [bos, ≤75 tokens, eos], with the weights as float16 values. */
export interface TokenChunk {
  ids: number[];
  weights: number[];
}

export interface LpwSide {
  text: string;
  runs: WeightedRun[];
  /** Tokens before padding to the other side's length. */
  tokens: WeightedTokens;
  chunks: TokenChunk[];
}

export interface LpwTokens {
  prompt: LpwSide;
  negative: LpwSide;
}

/** Tokens per chunk between bos and eos (CLIP's 77 positions minus two). */
export const CHUNK_TOKENS = 75;

const ROUND_MULTIPLIER = 1.1;
const SQUARE_MULTIPLIER = 1 / 1.1;

/**
 * The reference's re_attention, alternative for alternative. Python's `\d` is any decimal digit (Nd),
 * and float() reads them all, so the weight class is \p{Nd} too.
 */
const ATTENTION = /\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:([+-]?[.\p{Nd}]+)\)|\)|\]|[^\\()\[\]:]+|:/gu;

/** Python's \s (str.isspace) and \w (letters, numbers, underscore), for re_break's `\s*\bBREAK\b\s*`. */
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const PY_WORD = '[\\p{L}\\p{N}_]';
const BREAK = new RegExp(`${PY_SPACE}*(?<!${PY_WORD})BREAK(?!${PY_WORD})${PY_SPACE}*`, 'gu');

/** Unicode decimal digits come in aligned runs of ten, so a digit's value is its distance from its run's start mod 10. */
function asciiDigits(text: string): string {
  return Array.from(text, (ch) => {
    if (!/\p{Nd}/u.test(ch) || (ch >= '0' && ch <= '9')) return ch;
    let start = ch.codePointAt(0)!;
    while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
    return String((ch.codePointAt(0)! - start) % 10);
  }).join('');
}

/** float(text) for the weight pattern's matches; the reference raises on e.g. "." or "1.2.3". */
function parseWeight(text: string): number {
  const value = Number(asciiDigits(text));
  if (Number.isNaN(value)) {
    throw new EngineError('bad_prompt_weight', `prompt weight ":${text})" is not a number: write weights like (text:1.2)`);
  }
  return value;
}

/** A1111-style attention syntax → runs of (text, weight). Never empty: "" gives [{text: '', weight: 1}]. */
export function parsePromptWeights(prompt: string): WeightedRun[] {
  const res: WeightedRun[] = [];
  const round: number[] = [];
  const square: number[] = [];
  const multiplyRange = (start: number, multiplier: number) => {
    for (let p = start; p < res.length; p++) res[p]!.weight *= multiplier;
  };
  for (const m of prompt.matchAll(ATTENTION)) {
    const text = m[0];
    const weight = m[1];
    if (text.startsWith('\\')) res.push({ text: text.slice(1), weight: 1 });
    else if (text === '(') round.push(res.length);
    else if (text === '[') square.push(res.length);
    else if (weight !== undefined && round.length > 0) multiplyRange(round.pop()!, parseWeight(weight));
    else if (text === ')' && round.length > 0) multiplyRange(round.pop()!, ROUND_MULTIPLIER);
    else if (text === ']' && square.length > 0) multiplyRange(square.pop()!, SQUARE_MULTIPLIER);
    else {
      text.split(BREAK).forEach((part, i) => {
        if (i > 0) res.push({ text: 'BREAK', weight: -1 });
        res.push({ text: part, weight: 1 });
      });
    }
  }
  // Unclosed brackets, outermost first, rounds before squares: the order fixes the float64 products.
  for (const pos of round) multiplyRange(pos, ROUND_MULTIPLIER);
  for (const pos of square) multiplyRange(pos, SQUARE_MULTIPLIER);
  if (res.length === 0) return [{ text: '', weight: 1 }];
  const merged: WeightedRun[] = [res[0]!];
  for (const run of res.slice(1)) {
    const last = merged[merged.length - 1]!;
    if (last.weight === run.weight) last.text += run.text;
    else merged.push(run);
  }
  return merged;
}

/** Each run tokenized on its own, without bos/eos and without a length limit. */
export function tokenizeRuns(tokenizer: ClipTokenizer, runs: readonly WeightedRun[]): WeightedTokens {
  const ids: number[] = [];
  const weights: number[] = [];
  for (const run of runs) {
    const runIds = tokenizer.encode(run.text).slice(1, -1);
    ids.push(...runIds);
    for (let i = 0; i < runIds.length; i++) weights.push(run.weight);
  }
  return { ids, weights };
}

/** The weight the encoder arithmetic uses: torch.tensor(weights, dtype=float16), i.e. float64 → float32 → half. */
export function toHalfWeight(weight: number): number {
  return halfToFloat(floatToHalf(weight));
}

/** Full chunks of bos + 75 + eos while 75 tokens remain, then always a last, unpadded chunk (2 ids when none remain). */
export function chunkTokens(tokens: WeightedTokens, bosId: number, eosId: number): TokenChunk[] {
  const chunks: TokenChunk[] = [];
  const make = (from: number, to: number): TokenChunk => ({
    ids: [bosId, ...tokens.ids.slice(from, to), eosId],
    weights: [1, ...tokens.weights.slice(from, to).map(toHalfWeight), 1],
  });
  let from = 0;
  while (tokens.ids.length - from >= CHUNK_TOKENS) {
    chunks.push(make(from, from + CHUNK_TOKENS));
    from += CHUNK_TOKENS;
  }
  chunks.push(make(from, tokens.ids.length));
  return chunks;
}

function padTo(tokens: WeightedTokens, length: number, eosId: number): WeightedTokens {
  const extra = Math.max(0, length - tokens.ids.length);
  return { ids: [...tokens.ids, ...new Array<number>(extra).fill(eosId)], weights: [...tokens.weights, ...new Array<number>(extra).fill(1)] };
}

/**
 * Prompt and negative → runs, tokens and chunks, with both sides padded (eos, weight 1) to the same token
 * count so their chunk lists line up. An optional second prompt is appended after a space, as the code
 * does with prompt_2; a missing negative is "" (the reference would fail on None).
 */
export function buildLpwTokens(
  tokenizer: ClipTokenizer,
  prompt: string,
  negative: string | undefined,
  second: { prompt2?: string; negative2?: string } = {},
): LpwTokens {
  const promptText = second.prompt2 ? `${prompt} ${second.prompt2}` : prompt;
  const negativeText = second.negative2 ? `${negative ?? ''} ${second.negative2}` : (negative ?? '');
  const promptRuns = parsePromptWeights(promptText);
  const negativeRuns = parsePromptWeights(negativeText);
  const promptTokens = tokenizeRuns(tokenizer, promptRuns);
  const negativeTokens = tokenizeRuns(tokenizer, negativeRuns);
  const length = Math.max(promptTokens.ids.length, negativeTokens.ids.length);
  const side = (text: string, runs: WeightedRun[], tokens: WeightedTokens): LpwSide => ({
    text,
    runs,
    tokens,
    chunks: chunkTokens(padTo(tokens, length, tokenizer.eosId), tokenizer.bosId, tokenizer.eosId),
  });
  return { prompt: side(promptText, promptRuns, promptTokens), negative: side(negativeText, negativeRuns, negativeTokens) };
}
