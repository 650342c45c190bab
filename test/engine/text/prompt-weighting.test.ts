// Prompt weighting as InstantID's `_full` pipeline parses and chunks it (LongPromptWeight, A1111 syntax).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { ClipTokenizer } from '../../../src/engine/text/clip-tokenizer.js';
import {
  CHUNK_TOKENS, buildLpwTokens, chunkTokens, parsePromptWeights, toHalfWeight,
} from '../../../src/engine/text/prompt-weighting.js';
import { DEFAULT_NEGATIVE_PROMPT } from '../../../src/tools/instant-id-controlnet-lora.js';
import { golden } from '../../helpers/paths.js';

const clip = ClipTokenizer.fromFolder(golden('clip-tokenizer'));
const tiny = ClipTokenizer.fromFolder(join(golden('instantid-pipeline'), 'tokenizer'));

const runs = (prompt: string) => parsePromptWeights(prompt).map((r) => [r.text, r.weight]);

// The reference's own docstring examples, plus the edges it handles in its own way.
const SYNTAX: [string, [string, number][]][] = [
  ['normal text', [['normal text', 1]]],
  ['an (important) word', [['an ', 1], ['important', 1.1], [' word', 1]]],
  ['a [quiet] word', [['a ', 1], ['quiet', 1 / 1.1], [' word', 1]]],
  ['(cat:1.3) and (dog:0.5)', [['cat', 1.3], [' and ', 1], ['dog', 0.5]]],
  ['(unbalanced', [['unbalanced', 1.1]]],
  ['[unbalanced', [['unbalanced', 1 / 1.1]]],
  ['\\(literal\\]', [['(literal]', 1]]],
  ['back\\\\slash', [['back\\slash', 1]]],
  ['lone\\backslash', [['lonebackslash', 1]]],
  ['(unnecessary)(parens)', [['unnecessaryparens', 1.1]]],
  ['stray) bracket]', [['stray) bracket]', 1]]],
  ['ratio 16:9 and :1.5) alone', [['ratio 16:9 and :1.5) alone', 1]]],
  ['((a) [b])', [['a', 1.2100000000000002], [' ', 1.1], ['b', 1]]],
  [
    'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).',
    [['a ', 1], ['house', 1.5730000000000004], [' ', 1.1], ['on', 1], [' a ', 1.1], ['hill', 0.55], [', sun, ', 1.1], ['sky', 1.4641000000000006], ['.', 1.1]],
  ],
  ['(x:-1) (y:+.5)', [['x', -1], [' ', 1], ['y', 0.5]]],
  ['', [['', 1]]],
  ['()', [['', 1]]],
];

for (const [prompt, expected] of SYNTAX) {
  test(`parses ${JSON.stringify(prompt)}`, () => {
    assert.deepEqual(runs(prompt), expected);
  });
}

test('BREAK is not a chunk break: it becomes the text "BREAK" with weight −1 times its brackets', () => {
  assert.deepEqual(runs('a BREAK b'), [['a', 1], ['BREAK', -1], ['b', 1]]);
  assert.deepEqual(runs('(x BREAK y)'), [['x', 1.1], ['BREAK', -1.1], ['y', 1.1]]);
  assert.deepEqual(runs('BREAKFAST'), [['BREAKFAST', 1]]);
  assert.deepEqual(runs('éBREAK'), [['éBREAK', 1]]); // no word boundary after a letter, as in Python
  assert.deepEqual(tiny.tokenize('BREAK'), tiny.tokenize('break'));
});

test('a weight that is not a number is an EngineError, where the reference raises', () => {
  assert.throws(() => parsePromptWeights('(a:1.2.3)'), (e: unknown) => e instanceof EngineError && e.code === 'bad_prompt_weight');
  assert.throws(() => parsePromptWeights('(a:.)'), EngineError);
});

test('non-ASCII decimal digits are weights too, as Python float() reads them', () => {
  assert.deepEqual(runs('(a:١.٥)'), [['a', 1.5]]);
});

test('weights are rounded to float16 the way torch does (1.3 → 1.2998046875)', () => {
  assert.equal(toHalfWeight(1.3), 1.2998046875);
  assert.equal(toHalfWeight(1.1), 1.099609375);
  assert.equal(toHalfWeight(1.0001), 1);
});

test('each run is tokenized on its own: a weight boundary inside a word splits it', () => {
  const { prompt } = buildLpwTokens(clip, 'super(man:1.2)', '');
  assert.deepEqual(prompt.tokens.ids, [...clip.encode('super').slice(1, -1), ...clip.encode('man').slice(1, -1)]);
  assert.deepEqual(prompt.tokens.weights, [1, 1.2]);
});

test('escaped parentheses reach the tokenizer as literal brackets with weight 1', () => {
  const { prompt } = buildLpwTokens(clip, 'a sign \\(literal\\)', '');
  assert.deepEqual(prompt.runs, [{ text: 'a sign (literal)', weight: 1 }]);
  assert.deepEqual(prompt.tokens.ids, clip.encode('a sign (literal)').slice(1, -1));
});

test('a prompt over 75 tokens is chunked: full chunks of 77, the last one unpadded', () => {
  const ids = Array.from({ length: 80 }, (_, i) => 10 + i);
  const chunks = chunkTokens({ ids, weights: ids.map(() => 1.3) }, 1, 2);
  assert.deepEqual(chunks.map((c) => c.ids.length), [77, 7]);
  assert.deepEqual(chunks[0]!.ids, [1, ...ids.slice(0, CHUNK_TOKENS), 2]);
  assert.deepEqual(chunks[1]!.ids, [1, ...ids.slice(75), 2]);
  assert.deepEqual(chunks[1]!.weights, [1, 1.2998046875, 1.2998046875, 1.2998046875, 1.2998046875, 1.2998046875, 1]);
});

test('a multiple of 75 tokens ends in a 2-token [bos, eos] chunk; an empty prompt is just that chunk', () => {
  const ids = Array.from({ length: 75 }, () => 5);
  assert.deepEqual(chunkTokens({ ids, weights: ids.map(() => 1) }, 1, 2).map((c) => c.ids), [[1, ...ids, 2], [1, 2]]);
  assert.deepEqual(chunkTokens({ ids: [], weights: [] }, 1, 2), [{ ids: [1, 2], weights: [1, 1] }]);
});

test('the shorter side is padded with eos (weight 1) so prompt and negative chunk alike', () => {
  const long = Array.from({ length: 80 }, () => 'cat').join(' ');
  const { prompt, negative } = buildLpwTokens(clip, long, '(dog:1.5)');
  assert.deepEqual(prompt.chunks.map((c) => c.ids.length), [77, 7]);
  assert.deepEqual(negative.chunks.map((c) => c.ids.length), [77, 7]);
  assert.deepEqual(negative.chunks[0]!.ids.slice(0, 4), [49406, clip.tokenToId('dog</w>'), 49407, 49407]);
  assert.deepEqual(negative.chunks[0]!.weights.slice(0, 4), [1, 1.5, 1, 1]);
});

test('an empty or missing negative becomes all eos, encoded rather than zeroed', () => {
  const a = buildLpwTokens(clip, 'a cat', '');
  const b = buildLpwTokens(clip, 'a cat', undefined);
  assert.deepEqual(a.negative.chunks, [{ ids: [49406, 49407, 49407, 49407], weights: [1, 1, 1, 1] }]);
  assert.deepEqual(b.negative.chunks, a.negative.chunks);
});

test("the seed's default negative prompt parses as 3 chunks with the tiny pipeline tokenizer (as the text-lpw golden)", () => {
  const { negative } = buildLpwTokens(tiny, 'analog film photo of a man', DEFAULT_NEGATIVE_PROMPT);
  assert.deepEqual(negative.runs.slice(0, 3).map((r) => [r.text, r.weight]), [['lowres, low quality, worst quality', 1.2], [', ', 1], ['text', 1.2]]);
  assert.deepEqual(negative.chunks.map((c) => c.ids.length), [77, 77, 26]);
});

test("with the real CLIP vocabulary the seed's default negative is 81 tokens: 2 chunks, none of it cut", () => {
  const { negative } = buildLpwTokens(clip, 'a man', DEFAULT_NEGATIVE_PROMPT);
  assert.equal(negative.tokens.ids.length, 81);
  assert.deepEqual(negative.chunks.map((c) => c.ids.length), [77, 8]);
});

test('a second prompt is appended after a space, as the reference does with prompt_2', () => {
  const { prompt } = buildLpwTokens(clip, 'a cat', '', { prompt2: '(red:1.2)' });
  assert.equal(prompt.text, 'a cat (red:1.2)');
  assert.deepEqual(prompt.runs.map((r) => r.weight), [1, 1.2]);
});
