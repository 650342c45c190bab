// Golden kind `text_lpw`: InstantID `_full` long-prompt weighting on the case's tokenizer and the two
// tiny text encoders. Every entry of config.pairs is replayed from its prompt and negative: the parsed
// runs, the tokens, the chunk lengths, the concatenated chunk ids and float16 weights (all exact), then
// the weighted embeddings and pooled embeddings (by the case's tolerance) through the CLIP text nets.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { parsePythonJson } from '../../formats/pyjson.js';
import { ClipTokenizer } from '../../text/clip-tokenizer.js';
import { loadClipTextEncoder } from '../../nets/clip-text.js';
import { encodePromptLpw, type TextEncoders } from '../../text/encode.js';
import { buildLpwTokens, type LpwSide, type WeightedRun } from '../../text/prompt-weighting.js';
import { compareStrings } from './clip_tokenizer.js';

const EMBED_OUTPUTS = ['prompt_embeds', 'negative_prompt_embeds', 'pooled_prompt_embeds', 'negative_pooled_prompt_embeds'] as const;

/** A component folder (another case) → its weights file and its config dict. */
function componentFiles(c: GoldenCase, relative: string): { weights: string; config: Record<string, unknown> } {
  const dir = c.file(relative);
  const json = parsePythonJson(readFileSync(join(dir, 'case.json'), 'utf8')) as { config?: Record<string, unknown>; files?: Record<string, unknown> };
  const weights = typeof json.files?.weights === 'string' ? json.files.weights : 'weights.safetensors';
  return { weights: join(dir, weights), config: json.config ?? {} };
}

function fail(name: string, note: string): Check {
  return { name, maxAbsError: Infinity, allowed: 0, pass: false, note };
}

/** Runs compared as text (exact) and weight (exact float64): the error is the largest weight difference. */
function compareRuns(name: string, actual: readonly WeightedRun[], expected: unknown): Check {
  if (!Array.isArray(expected)) return fail(name, 'no expected runs');
  if (actual.length !== expected.length) return fail(name, `${actual.length} runs, expected ${expected.length}`);
  let err = 0;
  let textsDiffer = 0;
  actual.forEach((run, i) => {
    const [text, weight] = expected[i] as [unknown, unknown];
    if (run.text !== text) textsDiffer++;
    err = Math.max(err, Math.abs(run.weight - Number(weight)));
  });
  const pass = textsDiffer === 0 && err === 0;
  return { name, maxAbsError: textsDiffer ? Infinity : err, allowed: 0, pass, ...(textsDiffer ? { note: `${textsDiffer} run texts differ` } : {}) };
}

function tokenStrings(tokenizer: ClipTokenizer, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.idToToken(id) ?? `<id ${id}>`);
}

/** Checks of one side that need no network: tokens, ids and float16 weights against io. */
function sideChecks(tokenizer: ClipTokenizer, prefix: string, side: LpwSide, expectedRuns: unknown, expectedTokens: unknown): Check[] {
  const checks = [compareRuns(`${prefix}_runs`, side.runs, expectedRuns)];
  if (typeof expectedTokens === 'string') {
    const expected = expectedTokens.split(' ').filter((t) => t.length > 0);
    checks.push(compareStrings(`${prefix}_tokens`, tokenStrings(tokenizer, side.tokens.ids), expected));
  }
  return checks;
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const components = (c.config.components ?? {}) as Record<string, unknown>;
  if (typeof components.tokenizer !== 'string') return [fail('tokenizer', 'config.components.tokenizer is missing')];
  const tokenizer = ClipTokenizer.fromFolder(c.file(components.tokenizer));
  const pairs = c.config.pairs;
  if (!Array.isArray(pairs) || pairs.length === 0) return [fail('pairs', 'config.pairs is missing')];
  const checks: Check[] = [];

  // The reference hard-codes CLIP's 49406/49407; the case maps them to the tokenizer's own bos/eos.
  const ids = (c.config.tokenizer ?? {}) as Record<string, unknown>;
  if (typeof ids.bos_token_id === 'number' && typeof ids.eos_token_id === 'number') {
    checks.push(compareExact('tokenizer.bos_eos', [tokenizer.bosId, tokenizer.eosId], [ids.bos_token_id, ids.eos_token_id]));
  }

  // Both encoders come from the case's component folders (their weights and transformers config).
  const te1 = typeof components.text_encoder === 'string' ? components.text_encoder : undefined;
  const te2 = typeof components.text_encoder_2 === 'string' ? components.text_encoder_2 : undefined;
  if (!te1 || !te2) return [...checks, fail('text_encoders', 'config.components.text_encoder / text_encoder_2 are missing')];
  const e1 = componentFiles(c, te1);
  const e2 = componentFiles(c, te2);
  const encoder1 = await loadClipTextEncoder(e1.weights, e1.config, { outputs: ['penultimate'] });
  try {
    const encoder2 = await loadClipTextEncoder(e2.weights, e2.config, { outputs: ['penultimate', 'text_embeds'] });
    try {
      await checkPairs(c, tokenizer, pairs, { encoder1, encoder2 }, checks);
    } finally {
      await encoder2.dispose();
    }
  } finally {
    await encoder1.dispose();
  }
  // Every output the case lists must have been judged; one that was not is a failure, never a silent pass.
  const judged = new Set(checks.map((k) => k.name));
  const outputs = Array.isArray(c.json.outputs) ? c.json.outputs.filter((o): o is string => typeof o === 'string') : [];
  for (const name of outputs) if (!judged.has(name)) checks.push(fail(name, 'listed in outputs but not checked'));
  return checks;
}

async function checkPairs(c: GoldenCase, tokenizer: ClipTokenizer, pairs: unknown[], encoders: TextEncoders, checks: Check[]): Promise<void> {
  const io = c.io();
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i] as Record<string, unknown>;
    const p = `pair${i}`;
    if (typeof pair.prompt !== 'string' || typeof pair.negative_prompt !== 'string') {
      checks.push(fail(p, 'pair has no prompt/negative_prompt strings'));
      continue;
    }
    const tokens = buildLpwTokens(tokenizer, pair.prompt, pair.negative_prompt);
    checks.push(...sideChecks(tokenizer, `${p}.prompt`, tokens.prompt, pair.prompt_runs, pair.prompt_tokens));
    checks.push(...sideChecks(tokenizer, `${p}.negative`, tokens.negative, pair.negative_runs, pair.negative_tokens));
    if (Array.isArray(pair.chunk_lengths)) {
      checks.push(compareExact(`${p}.chunk_lengths`, tokens.prompt.chunks.map((k) => k.ids.length), pair.chunk_lengths as number[]));
      checks.push(compareExact(`${p}.negative.chunk_lengths`, tokens.negative.chunks.map((k) => k.ids.length), pair.chunk_lengths as number[]));
    }
    for (const [sideName, side] of [['prompt', tokens.prompt], ['negative', tokens.negative]] as const) {
      const idsName = `${p}.${sideName}.input_ids`;
      const weightsName = `${p}.${sideName}.weights`;
      if (io.has(idsName)) checks.push(compareExact(idsName, side.chunks.flatMap((k) => k.ids), io.read(idsName) as BigInt64Array));
      if (io.has(weightsName)) checks.push(compareExact(weightsName, side.chunks.flatMap((k) => k.weights), io.readFloat32(weightsName)));
    }

    const out = await encodePromptLpw({ prompt: pair.prompt, negative: pair.negative_prompt }, tokenizer, encoders);
    const actual: Record<(typeof EMBED_OUTPUTS)[number], Float32Array> = {
      prompt_embeds: out.promptEmbeds,
      negative_prompt_embeds: out.negativePromptEmbeds,
      pooled_prompt_embeds: out.pooledPromptEmbeds,
      negative_pooled_prompt_embeds: out.negativePooledPromptEmbeds,
    };
    for (const o of EMBED_OUTPUTS) {
      const name = `${p}.${o}`;
      if (io.has(name)) checks.push(compareClose(name, actual[o], io.readFloat32(name), c.tolerance));
    }
  }
}
