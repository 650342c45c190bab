// Golden kind `clip_tokenizer`: the case's vocabulary (vocab.json, merges.txt, tokenizer_config.json) and
// a list of prompts in cases.json, each with the ids transformers' slow CLIPTokenizer gives. Every column
// is replayed generically: `untruncated` (no limit), `max_length_<N>_pad_eos|bang` (padding='max_length',
// truncation, pad token eos or '!' as SDXL's tokenizer_2), `tokens`, `n_tokens_untruncated`. Exact.
// The `ftfy` column (transformers with ftfy installed) is not checked: the engine follows the ftfy-less
// path diffusers users get by default (see text/clip-pretokenize.ts). Any other column fails, never passes.
import { readFileSync } from 'node:fs';
import type { GoldenCase } from '../case.js';
import { compareExact, type Check } from '../compare.js';
import { ClipTokenizer } from '../../text/clip-tokenizer.js';

/** Columns that are ours to ignore: the input itself and the ftfy variant. */
const NOT_CHECKED = new Set(['prompt', 'ftfy']);
const MAX_LENGTH_COLUMN = /^max_length_(\d+)_pad_(eos|bang)$/;

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function fileName(c: GoldenCase, key: string, fallback: string): string {
  const files = (c.json.files ?? {}) as Record<string, unknown>;
  const name = files[key];
  return typeof name === 'string' ? name : fallback;
}

/** Token strings compared position by position; the error is the number of differing positions. */
export function compareStrings(name: string, actual: readonly string[], expected: readonly string[]): Check {
  if (actual.length !== expected.length) {
    return { name, maxAbsError: Infinity, allowed: 0, pass: false, note: `length ${actual.length}, expected ${expected.length}` };
  }
  const differing = actual.filter((t, i) => t !== expected[i]).length;
  return { name, maxAbsError: differing, allowed: 0, pass: differing === 0, ...(differing ? { note: `${differing} tokens differ` } : {}) };
}

function isIdList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isSafeInteger(v));
}

export function evaluate(c: GoldenCase): Check[] {
  const vocab = readJson(c.file(fileName(c, 'vocab', 'vocab.json'))) as Record<string, number>;
  const merges = readFileSync(c.file(fileName(c, 'merges', 'merges.txt')), 'utf8');
  const tokenizerConfig = readJson(c.file(fileName(c, 'tokenizer_config', 'tokenizer_config.json'))) as Record<string, unknown>;
  const byPad = {
    eos: new ClipTokenizer({ vocab, merges, tokenizerConfig }),
    // The case's 'bang' columns are this vocabulary loaded with pad_token='!', like SDXL's tokenizer_2.
    bang: new ClipTokenizer({ vocab, merges, tokenizerConfig: { ...tokenizerConfig, pad_token: '!' } }),
  };
  const tokenizer = byPad.eos;
  const cases = (readJson(c.file(fileName(c, 'cases', 'cases.json'))) as { cases?: unknown }).cases;
  if (!Array.isArray(cases) || cases.length === 0) {
    return [{ name: 'cases', maxAbsError: Infinity, allowed: 0, pass: false, note: 'cases.json has no "cases" list' }];
  }
  const checks: Check[] = [];
  cases.forEach((entry: Record<string, unknown>, i) => {
    const prompt = entry.prompt;
    const label = `prompt${i}`;
    if (typeof prompt !== 'string') {
      checks.push({ name: `${label}.prompt`, maxAbsError: Infinity, allowed: 0, pass: false, note: 'entry has no prompt string' });
      return;
    }
    const untruncated = tokenizer.encode(prompt);
    for (const [column, expected] of Object.entries(entry)) {
      if (NOT_CHECKED.has(column)) continue;
      const name = `${label}.${column}`;
      const lengthColumn = MAX_LENGTH_COLUMN.exec(column);
      if (column === 'untruncated' && isIdList(expected)) {
        checks.push(compareExact(name, untruncated, expected));
      } else if (lengthColumn && isIdList(expected)) {
        const maxLength = Number(lengthColumn[1]);
        const padded = byPad[lengthColumn[2] as 'eos' | 'bang'].encode(prompt, { padding: 'max_length', maxLength, truncation: true });
        checks.push(compareExact(name, padded, expected));
      } else if (column === 'tokens' && Array.isArray(expected)) {
        // convert_ids_to_tokens(untruncated): an out-of-vocabulary piece shows as the unk token there.
        const tokens = untruncated.map((id) => tokenizer.idToToken(id) ?? `<id ${id}>`);
        checks.push(compareStrings(name, tokens, expected.map(String)));
      } else if (column === 'n_tokens_untruncated' && typeof expected === 'number') {
        checks.push(compareExact(name, [untruncated.length], [expected]));
      } else {
        checks.push({ name, maxAbsError: Infinity, allowed: 0, pass: false, note: `column "${column}" is not understood by this evaluator` });
      }
    }
  });
  // Said in the report, not silently dropped: the ftfy column is an alternative reference for
  // pipelines with ftfy installed, which the engine deliberately does not follow.
  checks.push({ name: 'ftfy.*', maxAbsError: 0, allowed: 0, pass: true, note: 'not checked: the engine tokenizes as transformers without ftfy (diffusers\' default)' });
  return checks;
}
