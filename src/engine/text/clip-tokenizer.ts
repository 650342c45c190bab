// The CLIP BPE tokenizer as transformers' slow CLIPTokenizer behaves (the one diffusers' SDXL pipelines
// and InstantID load from a model's tokenizer/ and tokenizer_2/ folders): added/special tokens are split
// out first, the rest is cleaned and pre-tokenized (clip-pretokenize.ts), each pre-token is merged by
// rank from merges.txt with '</w>' on its last symbol, and ids come from vocab.json.
// encode() adds bos/eos, then truncates and pads like tokenizer(text, padding=..., max_length=...,
// truncation=...). Tokenizer 1 of SDXL pads with eos; tokenizer_2 (OpenCLIP) pads with '!'.
// Behaviour worth knowing (all matched against the clip-tokenizer golden, 40 prompts):
// - Weighting syntax "(cat:1.2)" is plain text here; prompt-weighting.ts strips it before tokenizing.
// - Emoji: zero-width joiners are format characters and are dropped, so a ZWJ family becomes its
//   members run together; variation selectors stay, inside the emoji's symbol run ('❤️' is one token).
// - Nothing is cut unless truncation is asked for: over 77 tokens encode() returns them all.
// - The empty prompt is [bos, eos]. The pad token ('!' in tokenizer_2) is an added token, so '!!!' in
//   a prompt becomes three '!' tokens there, unlike tokenizer 1's single '!!!</w>'.
// - With ftfy installed transformers differs on 8 of the 40 golden prompts; see clip-pretokenize.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { basicClean, clipPreTokens, toByteAlphabet } from './clip-pretokenize.js';

/** How a special token is matched in raw text (transformers' AddedToken flags that the slow path uses). */
export interface SpecialToken {
  content: string;
  /** Eat whitespace on the token's left. */
  lstrip: boolean;
  /** Eat whitespace on the token's right. */
  rstrip: boolean;
}

export interface ClipTokenizerConfig {
  bos: SpecialToken;
  eos: SpecialToken;
  unk: SpecialToken;
  pad: SpecialToken;
  /** Used for padding/truncation when encode() is given no maxLength. */
  modelMaxLength: number;
  /** Further added tokens (tokenizer_config.json "added_tokens_decoder"), matched like the specials. */
  extra: SpecialToken[];
}

export interface EncodeOptions {
  /** Defaults to modelMaxLength; only used when padding or truncating. */
  maxLength?: number;
  padding?: 'max_length' | 'none';
  truncation?: boolean;
}

export interface TokenizerSource {
  /** vocab.json contents: token → id. */
  vocab: Record<string, number>;
  /** merges.txt contents. */
  merges: string;
  /** tokenizer_config.json, parsed (optional). */
  tokenizerConfig?: Record<string, unknown>;
  /** special_tokens_map.json, parsed (optional); its entries win over tokenizer_config.json's. */
  specialTokensMap?: Record<string, unknown>;
}

/** transformers reads at most this many merges (CLIP's 49152-token budget minus bytes and specials). */
const MAX_MERGES = 49152 - 256 - 2;
/** bpe() results are cached per pre-token; the bound keeps a long-running service's memory flat. */
const BPE_CACHE_LIMIT = 20000;
/** CLIPTokenizer's cache is seeded with these two, so bpe() returns them whole. */
const SELF_MAPPED = ['<|startoftext|>', '<|endoftext|>'];

const INSTALL_HINT =
  'install the CLIP tokenizer files (vocab.json and merges.txt, with tokenizer_config.json): ' +
  "copy the tokenizer/ and tokenizer_2/ folders of stabilityai/stable-diffusion-xl-base-1.0 into the model's folder or the model store";

function readJsonFile(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new EngineError('bad_tokenizer', `${path} is not valid JSON (${(err as Error).message}); ${INSTALL_HINT}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EngineError('bad_tokenizer', `${path} is not a JSON object; ${INSTALL_HINT}`);
  }
  return value as Record<string, unknown>;
}

/** A token given as a string or as a serialized AddedToken ({content, lstrip, rstrip, ...}). */
function parseSpecialToken(value: unknown): SpecialToken | undefined {
  if (typeof value === 'string') return { content: value, lstrip: false, rstrip: false };
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    const v = value as { content: string; lstrip?: unknown; rstrip?: unknown };
    return { content: v.content, lstrip: v.lstrip === true, rstrip: v.rstrip === true };
  }
  return undefined;
}

/** CLIPTokenizer's defaults, overridden by tokenizer_config.json, then by special_tokens_map.json. */
export function resolveConfig(tokenizerConfig: Record<string, unknown> = {}, specialTokensMap: Record<string, unknown> = {}): ClipTokenizerConfig {
  const pick = (key: string, fallback: string): SpecialToken =>
    parseSpecialToken(specialTokensMap[key]) ?? parseSpecialToken(tokenizerConfig[key]) ?? { content: fallback, lstrip: false, rstrip: false };
  const maxLen = tokenizerConfig.model_max_length;
  const extra: SpecialToken[] = [];
  const decoder = tokenizerConfig.added_tokens_decoder;
  if (typeof decoder === 'object' && decoder !== null) {
    for (const value of Object.values(decoder)) {
      const token = parseSpecialToken(value);
      if (token) extra.push(token);
    }
  }
  return {
    bos: pick('bos_token', '<|startoftext|>'),
    eos: pick('eos_token', '<|endoftext|>'),
    unk: pick('unk_token', '<|endoftext|>'),
    pad: pick('pad_token', '<|endoftext|>'),
    // Every CLIP text model has 77 positions; a config without the field means that.
    modelMaxLength: typeof maxLen === 'number' && Number.isSafeInteger(maxLen) && maxLen > 0 ? maxLen : 77,
    extra,
  };
}

/** merges.txt → rank per "first second" pair; the first line (#version) is skipped as transformers does. */
function parseMerges(text: string): Map<string, number> {
  const lines = text.trim().split('\n').slice(1, 1 + MAX_MERGES);
  const ranks = new Map<string, number>();
  lines.forEach((line, rank) => {
    const parts = line.trim().split(/\s+/);
    if (parts.length === 2) ranks.set(`${parts[0]} ${parts[1]}`, rank); // a repeated pair keeps its later rank, like dict(zip())
  });
  return ranks;
}

/**
 * Most tokens one prompt may make: 1024 is 13 of the 75-token chunks long prompts are cut into, far past
 * what the text encoders weigh usefully, and it bounds their work on a stranger's megabyte of text.
 */
export const MAX_PROMPT_TOKENS = 1024;

/** A text that makes more tokens than the tokenizer accepts; the message is for the user. */
export class PromptTooLongError extends Error {
  constructor(readonly maxTokens: number) {
    super(`The prompt is longer than ${maxTokens} tokens: shorten it (a token is about a short word or part of one).`);
    this.name = 'PromptTooLongError';
  }
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly modelMaxLength: number;
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  /** Added tokens by content, longest first so that the leftmost match is also the longest. */
  private readonly added: SpecialToken[];
  private readonly addedIds = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  /** Most tokens one text may make (see PromptTooLongError). */
  readonly maxTokens: number;

  constructor(source: TokenizerSource, opts: { maxTokens?: number } = {}) {
    this.maxTokens = opts.maxTokens ?? MAX_PROMPT_TOKENS;
    this.encoder = new Map(Object.entries(source.vocab));
    this.decoder = new Map(Array.from(this.encoder, ([token, id]) => [id, token]));
    this.ranks = parseMerges(source.merges);
    const config = resolveConfig(source.tokenizerConfig, source.specialTokensMap);
    this.modelMaxLength = config.modelMaxLength;
    const byContent = new Map<string, SpecialToken>();
    for (const t of [config.bos, config.eos, config.unk, config.pad, ...config.extra]) if (!byContent.has(t.content)) byContent.set(t.content, t);
    this.added = [...byContent.values()].filter((t) => t.content.length > 0).sort((a, b) => b.content.length - a.content.length);
    // An added token outside the vocabulary gets the next free id, as _add_tokens does.
    let nextId = this.encoder.size;
    for (const t of byContent.values()) {
      const id = this.encoder.get(t.content) ?? nextId++;
      this.addedIds.set(t.content, id);
      if (!this.decoder.has(id)) this.decoder.set(id, t.content);
    }
    this.bosId = this.addedIds.get(config.bos.content)!;
    this.eosId = this.addedIds.get(config.eos.content)!;
    this.padId = this.addedIds.get(config.pad.content)!;
    this.unkId = this.addedIds.get(config.unk.content)!;
  }

  /** A tokenizer folder as diffusers lays it out: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. */
  static fromFolder(dir: string): ClipTokenizer {
    const optional = (name: string) => (existsSync(join(dir, name)) ? join(dir, name) : undefined);
    const missing = ['vocab.json', 'merges.txt'].filter((name) => !existsSync(join(dir, name)));
    if (missing.length) {
      throw new EngineError('tokenizer_missing', `no CLIP tokenizer in ${dir} (missing ${missing.join(', ')}): ${INSTALL_HINT}`);
    }
    return ClipTokenizer.fromFiles({
      vocab: join(dir, 'vocab.json'),
      merges: join(dir, 'merges.txt'),
      tokenizerConfig: optional('tokenizer_config.json'),
      specialTokensMap: optional('special_tokens_map.json'),
    });
  }

  /** The same files given one by one (paths). */
  static fromFiles(paths: { vocab: string; merges: string; tokenizerConfig?: string; specialTokensMap?: string }): ClipTokenizer {
    for (const path of [paths.vocab, paths.merges]) {
      if (!existsSync(path)) throw new EngineError('tokenizer_missing', `CLIP tokenizer file ${path} does not exist: ${INSTALL_HINT}`);
    }
    const vocab = readJsonFile(paths.vocab);
    if (!Object.values(vocab).every((id) => Number.isSafeInteger(id))) {
      throw new EngineError('bad_tokenizer', `${paths.vocab} must map tokens to integer ids; ${INSTALL_HINT}`);
    }
    return new ClipTokenizer({
      vocab: vocab as Record<string, number>,
      merges: readFileSync(paths.merges, 'utf8'),
      ...(paths.tokenizerConfig ? { tokenizerConfig: readJsonFile(paths.tokenizerConfig) } : {}),
      ...(paths.specialTokensMap ? { specialTokensMap: readJsonFile(paths.specialTokensMap) } : {}),
    });
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /**
   * Tokens of `text` without bos/eos, as tokenizer.tokenize(text). Stops with PromptTooLongError as soon as
   * more than `maxTokens` are made (no work is spent on the rest of a huge text). Tokens are appended one by
   * one: spreading a long word's tokens into push() overflowed the call stack.
   */
  tokenize(text: string): string[] {
    const out: string[] = [];
    const add = (token: string) => {
      if (out.length >= this.maxTokens) throw new PromptTooLongError(this.maxTokens);
      out.push(token);
    };
    for (const piece of this.splitAddedTokens(text)) {
      if (piece.added) {
        add(piece.text);
        continue;
      }
      for (const pre of clipPreTokens(basicClean(piece.text))) for (const token of this.bpe(toByteAlphabet(pre))) add(token);
    }
    return out;
  }

  /** Ids as tokenizer(text, ...).input_ids: [bos, ...tokens, eos], then truncation and padding. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const maxLength = options.maxLength ?? this.modelMaxLength;
    let content = this.tokenize(text).map((t) => this.tokenToId(t));
    // Truncation keeps room for bos and eos and cuts from the end (longest_first on one sequence).
    if (options.truncation) content = content.slice(0, Math.max(0, maxLength - 2));
    const ids = [this.bosId, ...content, this.eosId];
    if (options.padding === 'max_length') while (ids.length < maxLength) ids.push(this.padId);
    return ids;
  }

  tokenToId(token: string): number {
    return this.addedIds.get(token) ?? this.encoder.get(token) ?? this.unkId;
  }

  idToToken(id: number): string | undefined {
    return this.decoder.get(id);
  }

  /**
   * Leftmost-longest split on added tokens (transformers' Trie.split), honouring lstrip/rstrip.
   * Matching is case-sensitive on the raw text, as in the slow tokenizer.
   */
  private splitAddedTokens(text: string): { text: string; added: boolean }[] {
    const pieces: { text: string; added: boolean; token?: SpecialToken }[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const token = this.added.find((t) => text.startsWith(t.content, i));
      if (!token) {
        i++;
        continue;
      }
      if (i > start) pieces.push({ text: text.slice(start, i), added: false });
      pieces.push({ text: token.content, added: true, token });
      i += token.content.length;
      start = i;
    }
    if (start < text.length) pieces.push({ text: text.slice(start), added: false });
    for (let k = 0; k < pieces.length; k++) {
      const token = pieces[k]!.token;
      if (!token) continue;
      const left = pieces[k - 1];
      const right = pieces[k + 1];
      if (token.rstrip && right && !right.added) right.text = right.text.trimStart();
      if (token.lstrip && left && !left.added) left.text = left.text.trimEnd();
    }
    return pieces.filter((p) => p.text.length > 0);
  }

  /** Byte-pair merges by rank, lowest first, until no ranked pair is left; '</w>' marks the word's end. */
  private bpe(token: string): string[] {
    if (SELF_MAPPED.includes(token)) return [token];
    const cached = this.cache.get(token);
    if (cached) return cached;
    const symbols = Array.from(token); // every byte-alphabet character is one UTF-16 unit
    let word = [...symbols.slice(0, -1), `${symbols[symbols.length - 1]}</w>`];
    while (word.length > 1) {
      let best: string | undefined;
      let bestRank = Infinity;
      for (let k = 0; k + 1 < word.length; k++) {
        const rank = this.ranks.get(`${word[k]} ${word[k + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = `${word[k]} ${word[k + 1]}`;
        }
      }
      if (best === undefined) break;
      const [first, second] = best.split(' ') as [string, string];
      const merged: string[] = [];
      for (let k = 0; k < word.length; k++) {
        if (word[k] === first && k + 1 < word.length && word[k + 1] === second) {
          merged.push(first + second);
          k++;
        } else {
          merged.push(word[k]!);
        }
      }
      word = merged;
    }
    if (this.cache.size >= BPE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }
}
