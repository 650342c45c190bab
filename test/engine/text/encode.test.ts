// Text conditioning orchestration: the long-prompt weighting arithmetic and the standard 77-token mode,
// first with fake deterministic encoders (exact expectations), then with the CLIP text nets against the
// instantid-pipeline golden (standard mode, as the basic InstantID pipeline encodes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { readFileSync } from 'node:fs';
import { loadClipTextEncoder } from '../../../src/engine/nets/clip-text.js';
import { ClipTokenizer } from '../../../src/engine/text/clip-tokenizer.js';
import {
  applyChunkWeights, encodePromptLpw, encodePromptStandard, type TextEncoderOutput, type TextEncoderRunner,
} from '../../../src/engine/text/encode.js';
import { golden } from '../../helpers/paths.js';

const clip = ClipTokenizer.fromFolder(golden('clip-tokenizer'));

/** A fake encoder: value(b, t, d) depends on the id, the position and the feature; text_embeds on the row's ids. */
class FakeEncoder implements TextEncoderRunner {
  readonly calls: { ids: number[]; batch: number; seqLen: number }[] = [];
  constructor(readonly hidden: number, readonly offset: number, readonly projection = 0) {}

  static value(id: number, t: number, d: number, offset: number): number {
    return Math.fround(Math.sin(id * 0.37 + t * 0.11 + d * 0.05 + offset) * 3);
  }

  async encode(ids: BigInt64Array, batch: number, seqLen: number): Promise<TextEncoderOutput> {
    const list = Array.from(ids, Number);
    this.calls.push({ ids: list, batch, seqLen });
    const penultimate = new Float32Array(batch * seqLen * this.hidden);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seqLen; t++) {
        for (let d = 0; d < this.hidden; d++) penultimate[(b * seqLen + t) * this.hidden + d] = FakeEncoder.value(list[b * seqLen + t]!, t, d, this.offset);
      }
    }
    const out: TextEncoderOutput = { penultimate, hidden: this.hidden };
    if (this.projection) {
      out.textEmbeds = new Float32Array(batch * this.projection);
      for (let b = 0; b < batch; b++) {
        const row = list.slice(b * seqLen, (b + 1) * seqLen);
        for (let p = 0; p < this.projection; p++) out.textEmbeds[b * this.projection + p] = row.reduce((s, id) => s + id, 0) * (p + 1);
      }
    }
    return out;
  }
}

const fakes = () => ({ encoder1: new FakeEncoder(3, 0), encoder2: new FakeEncoder(2, 1, 4) });

test('weighting moves a row toward the chunk eos row: e_last + (e − e_last)·w, in float32 steps', () => {
  const dim = 2;
  const embeds = new Float32Array([1, 2, 10, 20, 0.5, -0.5]); // rows: token, token, eos
  applyChunkWeights(embeds, dim, [1, 1.2998046875, 1]);
  const f = Math.fround;
  assert.deepEqual(Array.from(embeds), [1, 2, f(0.5 + f(f(10 - 0.5) * 1.2998046875)), f(-0.5 + f(f(20 + 0.5) * 1.2998046875)), 0.5, -0.5]);
});

test('long-prompt mode encodes each chunk with both encoders as a [negative, prompt] batch', async () => {
  const long = Array.from({ length: 80 }, () => 'cat').join(' ');
  const enc = fakes();
  const out = await encodePromptLpw({ prompt: `(${long}:1.3)`, negative: 'dog' }, clip, enc);
  assert.deepEqual(enc.encoder1.calls.map((c) => [c.batch, c.seqLen]), [[2, 77], [2, 7]]);
  assert.deepEqual(enc.encoder2.calls.map((c) => c.ids), enc.encoder1.calls.map((c) => c.ids)); // tokenizer 1 for both
  assert.equal(out.seqLen, 84);
  assert.equal(out.dim, 5);
  assert.equal(out.promptEmbeds.length, 84 * 5);
  assert.equal(out.negativePromptEmbeds.length, 84 * 5);
});

test('long-prompt embeddings: hidden states side by side, weighted rows per chunk, chunks concatenated', async () => {
  const long = Array.from({ length: 80 }, () => 'cat').join(' ');
  const enc = fakes();
  const { tokens, promptEmbeds, dim } = await encodePromptLpw({ prompt: `(${long}:1.3)`, negative: 'dog' }, clip, enc);
  let row = 0;
  for (const chunk of tokens.prompt.chunks) {
    const len = chunk.ids.length;
    const raw = (t: number) => [
      ...[0, 1, 2].map((d) => FakeEncoder.value(chunk.ids[t]!, t, d, 0)),
      ...[0, 1].map((d) => FakeEncoder.value(chunk.ids[t]!, t, d, 1)),
    ];
    const last = raw(len - 1);
    for (let t = 0; t < len; t++) {
      const w = chunk.weights[t]!;
      const expected = w === 1 ? raw(t) : raw(t).map((e, d) => Math.fround(last[d]! + Math.fround(Math.fround(e - last[d]!) * w)));
      assert.deepEqual(Array.from(promptEmbeds.subarray((row + t) * dim, (row + t + 1) * dim)), expected, `chunk row ${t}`);
    }
    row += len;
  }
  assert.equal(tokens.prompt.chunks[0]!.weights[1], 1.2998046875);
});

test('long-prompt pooled embeddings are encoder 2 text_embeds of the last chunk only', async () => {
  const long = Array.from({ length: 80 }, () => 'cat').join(' ');
  const enc = fakes();
  const out = await encodePromptLpw({ prompt: long, negative: '' }, clip, enc);
  const lastChunk = enc.encoder2.calls.at(-1)!;
  const sum = (ids: number[]) => ids.reduce((s, id) => s + id, 0);
  const negIds = lastChunk.ids.slice(0, lastChunk.seqLen);
  const posIds = lastChunk.ids.slice(lastChunk.seqLen);
  assert.equal(out.pooledDim, 4);
  assert.deepEqual(Array.from(out.pooledPromptEmbeds), [1, 2, 3, 4].map((p) => Math.fround(sum(posIds) * p)));
  assert.deepEqual(Array.from(out.negativePooledPromptEmbeds), [1, 2, 3, 4].map((p) => Math.fround(sum(negIds) * p)));
});

test('standard mode: 77 tokens per tokenizer, tokenizer 2 padding with "!", negative encoded when given', async () => {
  const bang = new ClipTokenizer({
    vocab: JSON.parse(readFileSync(join(golden('clip-tokenizer'), 'vocab.json'), 'utf8')) as Record<string, number>,
    merges: readFileSync(join(golden('clip-tokenizer'), 'merges.txt'), 'utf8'),
    tokenizerConfig: { pad_token: '!' },
  });
  const enc = fakes();
  const out = await encodePromptStandard({ prompt: 'a cat', negative: '' }, { tokenizer1: clip, tokenizer2: bang }, enc, { forceZerosForEmptyPrompt: true });
  assert.equal(out.seqLen, 77);
  assert.equal(out.dim, 5);
  assert.deepEqual(enc.encoder1.calls[0]!.ids.slice(77, 81), [49406, 320, 2368, 49407]);
  assert.equal(enc.encoder1.calls[0]!.ids[81], 49407);
  assert.equal(enc.encoder2.calls[0]!.ids[81], 0);
  assert.ok(out.negativePromptEmbeds.some((v) => v !== 0), 'an empty string is encoded, not zeroed');
});

test('standard mode: a missing negative is zeros when the config says force_zeros_for_empty_prompt', async () => {
  const enc = fakes();
  const out = await encodePromptStandard({ prompt: 'a cat' }, { tokenizer1: clip, tokenizer2: clip }, enc, { forceZerosForEmptyPrompt: true });
  assert.equal(enc.encoder1.calls[0]!.batch, 1);
  assert.ok(out.negativePromptEmbeds.every((v) => v === 0));
  assert.ok(out.negativePooledPromptEmbeds.every((v) => v === 0));
  const encoded = await encodePromptStandard({ prompt: 'a cat' }, { tokenizer1: clip, tokenizer2: clip }, fakes(), { forceZerosForEmptyPrompt: false });
  assert.ok(encoded.negativePromptEmbeds.some((v) => v !== 0));
});

test('standard mode matches the basic InstantID pipeline golden (ids exact, embeddings by tolerance)', async () => {
  const dir = golden('instantid-pipeline');
  const call = (parsePythonJson(readFileSync(join(dir, 'case.json'), 'utf8')) as { config: { call: { prompt: string; negative_prompt: string } } }).config.call;
  const tokenizer1 = ClipTokenizer.fromFolder(join(dir, 'tokenizer'));
  const tokenizer2 = ClipTokenizer.fromFolder(join(dir, 'tokenizer_2'));
  const io = SafetensorsFile.open(join(dir, 'io.safetensors'));
  const ids = (name: string) => Array.from(io.read(name) as BigInt64Array, Number);
  const pad = { padding: 'max_length', truncation: true } as const;
  assert.deepEqual(tokenizer1.encode(call.prompt, pad), ids('tokenizer.prompt.input_ids'));
  assert.deepEqual(tokenizer1.encode(call.negative_prompt, pad), ids('tokenizer.negative.input_ids'));
  assert.deepEqual(tokenizer2.encode(call.prompt, pad), ids('tokenizer_2.prompt.input_ids'));
  assert.deepEqual(tokenizer2.encode(call.negative_prompt, pad), ids('tokenizer_2.negative.input_ids'));

  const component = (name: string) => {
    const caseDir = golden(name);
    const config = (parsePythonJson(readFileSync(join(caseDir, 'case.json'), 'utf8')) as { config: Record<string, unknown> }).config;
    return loadClipTextEncoder(join(caseDir, 'weights.safetensors'), config);
  };
  const encoder1 = await component('clip-text-l');
  const encoder2 = await component('clip-text-g');
  try {
    const out = await encodePromptStandard(
      { prompt: call.prompt, negative: call.negative_prompt }, { tokenizer1, tokenizer2 }, { encoder1, encoder2 }, { forceZerosForEmptyPrompt: true },
    );
    const close = (name: string, actual: Float32Array) => {
      const expected = io.readFloat32(name);
      assert.equal(actual.length, expected.length, name);
      const err = actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0);
      assert.ok(err <= 1e-4, `${name}: max-abs ${err}`);
    };
    close('prompt_embeds', out.promptEmbeds);
    close('negative_prompt_embeds', out.negativePromptEmbeds);
    close('pooled_prompt_embeds', out.pooledPromptEmbeds);
    close('negative_pooled_prompt_embeds', out.negativePooledPromptEmbeds);
  } finally {
    await encoder1.dispose();
    await encoder2.dispose();
    io.close();
  }
});
