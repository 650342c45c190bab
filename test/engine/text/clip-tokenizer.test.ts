// The CLIP tokenizer behaves as transformers' slow CLIPTokenizer without ftfy (the clip-tokenizer golden
// checks all 40 of its prompts; these are the behaviours worth naming).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { ClipTokenizer, MAX_PROMPT_TOKENS, PromptTooLongError } from '../../../src/engine/text/clip-tokenizer.js';
import { basicClean, bytesToUnicode } from '../../../src/engine/text/clip-pretokenize.js';
import { golden } from '../../helpers/paths.js';

const clipDir = golden('clip-tokenizer');
const clip = ClipTokenizer.fromFolder(clipDir);
const vocab = JSON.parse(readFileSync(join(clipDir, 'vocab.json'), 'utf8')) as Record<string, number>;
const merges = readFileSync(join(clipDir, 'merges.txt'), 'utf8');

test('a prompt becomes bos, one id per word, eos', () => {
  assert.deepEqual(clip.encode('a photo of a cat'), [49406, 320, 1125, 539, 320, 2368, 49407]);
  assert.deepEqual(clip.tokenize('a photo of a cat'), ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
});

test('case and runs of whitespace do not matter', () => {
  assert.deepEqual(clip.encode('A PHOTO of a CAT'), clip.encode('a photo of a cat'));
  assert.deepEqual(clip.encode('  a\tphoto\nof   a cat '), clip.encode('a photo of a cat'));
});

test('an unknown word is split into merged byte pieces, only the last marked </w>', () => {
  assert.deepEqual(clip.tokenize('photorealistic'), ['photo', 'realistic</w>']);
});

test('contractions, single digits and punctuation runs are separate pre-tokens', () => {
  assert.deepEqual(clip.tokenize("it's 50mm!!!"), ['it</w>', "'s</w>", '5</w>', '0</w>', 'mm</w>', '!!!</w>']);
});

test('weighting syntax is literal text to the tokenizer', () => {
  assert.deepEqual(clip.tokenize('(cat:1.2)'), ['(</w>', 'cat</w>', ':</w>', '1</w>', '.</w>', '2</w>', ')</w>']);
});

test('the empty prompt is bos, eos', () => {
  assert.deepEqual(clip.encode(''), [49406, 49407]);
  assert.deepEqual(clip.encode('', { padding: 'max_length', truncation: true }), [49406, 49407, ...new Array(75).fill(49407)]);
});

test('max_length padding pads with the configured pad token: eos for tokenizer 1', () => {
  const ids = clip.encode('a cat', { padding: 'max_length', maxLength: 77, truncation: true });
  assert.equal(ids.length, 77);
  assert.deepEqual(ids.slice(0, 5), [49406, 320, 2368, 49407, 49407]);
});

test("OpenCLIP's tokenizer_2 pads with '!' (id 0), and '!' then splits '!!!' into single tokens", () => {
  const bang = new ClipTokenizer({ vocab, merges, tokenizerConfig: { pad_token: '!' } });
  assert.equal(bang.padId, 0);
  assert.deepEqual(bang.encode('a cat', { padding: 'max_length', maxLength: 6 }), [49406, 320, 2368, 49407, 0, 0]);
  // The reason InstantID's LPW code uses tokenizer 1 for both encoders.
  assert.deepEqual(bang.tokenize('wow!!!'), ['wow</w>', '!', '!', '!']);
  assert.deepEqual(clip.tokenize('wow!!!'), ['wow</w>', '!!!</w>']);
});

test('truncation keeps 75 content tokens between bos and eos, and nothing is cut without it', () => {
  const long = Array.from({ length: 100 }, () => 'cat').join(' ');
  assert.equal(clip.encode(long).length, 102);
  const cut = clip.encode(long, { truncation: true, padding: 'max_length' });
  assert.equal(cut.length, 77);
  assert.equal(cut[0], 49406);
  assert.equal(cut[76], 49407);
  assert.ok(cut.slice(1, 76).every((id) => id === 2368));
});

test('special-token strings in the text become the special ids', () => {
  assert.deepEqual(clip.encode('<|startoftext|> cat <|endoftext|>'), [49406, 49406, 2368, 49407, 49407]);
});

test('cleanup: control and zero-width characters vanish, non-breaking spaces separate words, NFC', () => {
  assert.equal(basicClean('control\x07chars\x00here'), 'controlcharshere');
  assert.equal(basicClean('zero\u200bwidth non\xa0breaking'), 'zerowidth non breaking');
  assert.equal(basicClean('cafe\u0301'), 'café');
});

test('CJK ideographs are spaced out one by one, kana is not', () => {
  assert.equal(basicClean('日本語のプロンプト'), '日 本 語 のプロンプト');
});

test('unicode lower-casing follows Python: İ becomes i + combining dot', () => {
  assert.equal(basicClean('İstanbul'), 'i\u0307stanbul');
});

test('the byte alphabet maps printable bytes to themselves and the rest from U+0100 on', () => {
  const table = bytesToUnicode();
  assert.equal(table[0x41], 'A');
  assert.equal(table[0x20], '\u0120');
  assert.equal(table[0x00], '\u0100');
  assert.equal(new Set(table).size, 256);
});

test('merges apply lowest rank first', () => {
  const symbols = ['a', 'b', 'c', 'a</w>', 'b</w>', 'c</w>', 'ab', 'bc</w>', 'abc</w>'];
  const tiny = Object.fromEntries([...symbols, '<|startoftext|>', '<|endoftext|>'].map((s, i) => [s, i]));
  // rank 0 "b c</w>" beats rank 1 "a b": 'abc' → a + bc</w> → abc</w> needs "a bc</w>", absent → two tokens.
  const t = new ClipTokenizer({ vocab: tiny, merges: '#version: 0.2\nb c</w>\na b\n' });
  assert.deepEqual(t.tokenize('abc'), ['a', 'bc</w>']);
  const t2 = new ClipTokenizer({ vocab: tiny, merges: '#version: 0.2\na b\nb c</w>\n' });
  assert.deepEqual(t2.tokenize('abc'), ['ab', 'c</w>']);
});

test('special_tokens_map.json wins over tokenizer_config.json; serialized AddedTokens are read', () => {
  const t = new ClipTokenizer({
    vocab,
    merges,
    tokenizerConfig: { pad_token: '<|endoftext|>', model_max_length: 10 },
    specialTokensMap: { pad_token: { content: '!', lstrip: false, rstrip: false } },
  });
  assert.equal(t.padId, 0);
  assert.equal(t.modelMaxLength, 10);
  assert.equal(t.encode('cat', { padding: 'max_length' }).length, 10);
});

test('a folder without vocab.json or merges.txt is an EngineError naming what to install', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n');
  assert.throws(
    () => ClipTokenizer.fromFolder(dir),
    (err: unknown) => err instanceof EngineError && err.code === 'tokenizer_missing' && /vocab\.json/.test(err.message) && /install/.test(err.message),
  );
});

test('the tiny pipeline tokenizer reads its specials from tokenizer_config.json', () => {
  const t1 = ClipTokenizer.fromFolder(join(golden('instantid-pipeline'), 'tokenizer'));
  const t2 = ClipTokenizer.fromFolder(join(golden('instantid-pipeline'), 'tokenizer_2'));
  assert.deepEqual([t1.bosId, t1.eosId, t1.padId], [598, 599, 599]);
  assert.equal(t2.padId, t2.tokenToId('!'));
});

test('a single 100,000-character word makes its 200,000 tokens without overflowing the call stack', () => {
  const unbounded = new ClipTokenizer({ vocab, merges }, { maxTokens: Infinity });
  const tokens = unbounded.tokenize('\u0f00'.repeat(100_000));
  assert.equal(tokens.length, 200_000);
});

test('a megabyte prompt is refused by the token bound, quickly and with a message for the user', () => {
  const t0 = Date.now();
  assert.throws(() => clip.encode('a photo of a cat '.repeat(60_000)), (err: Error) => {
    assert.ok(err instanceof PromptTooLongError);
    assert.match(err.message, new RegExp(`longer than ${MAX_PROMPT_TOKENS} tokens`));
    return true;
  });
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});
