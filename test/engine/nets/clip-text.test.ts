// The CLIP text transformer: the transformers goldens, an unseen configuration checked against a
// plain float64 forward pass written here, causality, the compile cache, and the errors users meet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCase } from '../../../src/engine/golden/case.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/engine/formats/safetensors-write.js';
import { buildClipTextGraph, loadClipTextEncoder, type ClipTextWeights } from '../../../src/engine/nets/clip-text.js';
import { EngineError } from '../../../src/engine/errors.js';
import { golden } from '../../helpers/paths.js';
import {
  attention, binary, f32, gelu, layerNorm, linear, nd, randn, sigmoid, map, assertClose, type Nd,
} from '../../helpers/reference-ops.js';

const THREADS = { intraOpThreads: 1, interOpThreads: 1 };

/** A tiny CLIPTextModelWithProjection unlike the goldens: 2 layers, hidden 16, gelu, eos 5 (not the legacy 2). */
const TINY = {
  vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_attention_heads: 2, num_hidden_layers: 2,
  max_position_embeddings: 12, hidden_act: 'gelu', layer_norm_eps: 1e-5, eos_token_id: 5, projection_dim: 8,
};
type TinyConfig = typeof TINY;

function tinyWeights(cfg: TinyConfig, seed = 1): Map<string, Nd> {
  const { hidden_size: D, intermediate_size: F } = cfg;
  const w = new Map<string, Nd>();
  let s = seed;
  const put = (name: string, shape: number[], kind: 'matrix' | 'norm' | 'bias' | 'table'): void => {
    const r = randn(shape, s++, kind === 'matrix' ? 1 / Math.sqrt(shape[1]!) : kind === 'table' ? 0.5 : 0.1);
    w.set(name, kind === 'norm' ? map(r, (x) => 1 + x) : r);
  };
  put('text_model.embeddings.token_embedding.weight', [cfg.vocab_size, D], 'table');
  put('text_model.embeddings.position_embedding.weight', [cfg.max_position_embeddings, D], 'table');
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `text_model.encoder.layers.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      put(`${p}self_attn.${n}.weight`, [D, D], 'matrix');
      put(`${p}self_attn.${n}.bias`, [D], 'bias');
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      put(`${p}${n}.weight`, [D], 'norm');
      put(`${p}${n}.bias`, [D], 'bias');
    }
    put(`${p}mlp.fc1.weight`, [F, D], 'matrix');
    put(`${p}mlp.fc1.bias`, [F], 'bias');
    put(`${p}mlp.fc2.weight`, [D, F], 'matrix');
    put(`${p}mlp.fc2.bias`, [D], 'bias');
  }
  put('text_model.final_layer_norm.weight', [D], 'norm');
  put('text_model.final_layer_norm.bias', [D], 'bias');
  put('text_projection.weight', [cfg.projection_dim, D], 'matrix');
  return w;
}

/** In-memory weights in the shape of a WeightsFile (float32 copies of the float64 reference values). */
function asWeights(w: Map<string, Nd>): ClipTextWeights {
  return {
    has: (name) => w.has(name),
    info: (name) => ({ shape: w.get(name)!.shape }),
    readFloat32: (name) => f32(w.get(name)!),
  };
}

/** transformers' CLIPTextTransformer forward, float64, written out longhand. */
function referenceForward(cfg: TinyConfig, w: Map<string, Nd>, ids: number[], batch: number, seqLen: number) {
  const W = (name: string): Nd => w.get(name)!;
  const D = cfg.hidden_size;
  let h = nd([batch, seqLen, D]);
  for (let b = 0; b < batch; b++) for (let s = 0; s < seqLen; s++) for (let d = 0; d < D; d++) {
    h.data[(b * seqLen + s) * D + d] = W('text_model.embeddings.token_embedding.weight').data[ids[b * seqLen + s]! * D + d]!
      + W('text_model.embeddings.position_embedding.weight').data[s * D + d]!;
  }
  const mask = nd([seqLen, seqLen]);
  for (let i = 0; i < seqLen; i++) for (let j = i + 1; j < seqLen; j++) mask.data[i * seqLen + j] = -Infinity;
  const act = cfg.hidden_act === 'gelu' ? gelu : (x: number) => x * sigmoid(1.702 * x);
  const hidden: Nd[] = [h];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = (n: string): Nd => W(`text_model.encoder.layers.${i}.${n}`);
    const x = layerNorm(h, p('layer_norm1.weight'), p('layer_norm1.bias'), cfg.layer_norm_eps);
    const proj = (n: string, t: Nd): Nd => linear(t, p(`self_attn.${n}.weight`), p(`self_attn.${n}.bias`));
    const a = attention(proj('q_proj', x), proj('k_proj', x), proj('v_proj', x), cfg.num_attention_heads, mask);
    h = binary(h, proj('out_proj', a), (u, v) => u + v);
    const y = layerNorm(h, p('layer_norm2.weight'), p('layer_norm2.bias'), cfg.layer_norm_eps);
    const mlp = linear(map(linear(y, p('mlp.fc1.weight'), p('mlp.fc1.bias')), act), p('mlp.fc2.weight'), p('mlp.fc2.bias'));
    h = binary(h, mlp, (u, v) => u + v);
    hidden.push(h);
  }
  const last = layerNorm(h, W('text_model.final_layer_norm.weight'), W('text_model.final_layer_norm.bias'), cfg.layer_norm_eps);
  const pooledIndex: number[] = [];
  const pooled = nd([batch, D]);
  for (let b = 0; b < batch; b++) {
    const row = ids.slice(b * seqLen, (b + 1) * seqLen);
    const at = cfg.eos_token_id === 2 ? row.indexOf(Math.max(...row)) : Math.max(0, row.indexOf(cfg.eos_token_id));
    pooledIndex.push(at);
    for (let d = 0; d < D; d++) pooled.data[b * D + d] = last.data[(b * seqLen + at) * D + d]!;
  }
  const textEmbeds = linear(pooled, W('text_projection.weight'));
  return { last, penultimate: hidden[hidden.length - 2]!, pooled, textEmbeds, pooledIndex };
}

// Row 0: bos, tokens, eos (5), pad; row 1 has no eos at all (pooled at position 0), and its largest id
// comes early, so the legacy argmax rule would pick another position.
const TINY_IDS = [0, 7, 12, 3, 9, 5, 1, 1, 1, 0, 39, 8, 22, 14, 30, 11, 6, 2];

test('golden clip-text-l (CLIPTextModel, quick_gelu) matches transformers', async () => {
  const r = await evaluateCase(golden('clip-text-l'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('golden clip-text-g (CLIPTextModelWithProjection, gelu) matches transformers, text_embeds included', async () => {
  const r = await evaluateCase(golden('clip-text-g'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
  assert.ok(r.checks.some((c) => c.name === 'text_embeds'));
});

test('an unseen case (other sizes, gelu, eos id 5) passes the golden evaluator, and a wrong expectation fails it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-case-'));
  try {
    const w = tinyWeights(TINY);
    const ref = referenceForward(TINY, w, TINY_IDS, 2, 9);
    assert.deepEqual(ref.pooledIndex, [5, 0]);
    const F32 = (a: Nd): TensorToWrite => ({ dtype: 'F32', shape: a.shape, data: f32(a) });
    await writeSafetensors(join(dir, 'weights.safetensors'), Object.fromEntries([...w].map(([k, v]) => [k, F32(v)])));
    const io = (lastHidden: Nd): Record<string, TensorToWrite> => ({
      input_ids: { dtype: 'I64', shape: [2, 9], data: BigInt64Array.from(TINY_IDS, BigInt) },
      last_hidden_state: F32(lastHidden),
      hidden_states_penultimate: F32(ref.penultimate),
      pooler_output: F32(ref.pooled),
      text_embeds: F32(ref.textEmbeds),
      pooled_index: { dtype: 'I64', shape: [2], data: BigInt64Array.from(ref.pooledIndex, BigInt) },
    });
    const caseJson = { kind: 'clip_text_model', config: { _class_name: 'CLIPTextModelWithProjection', ...TINY }, tolerance: { atol: 2e-5, rtol: 1e-4 } };
    await writeFile(join(dir, 'case.json'), JSON.stringify(caseJson));
    await writeSafetensors(join(dir, 'io.safetensors'), io(ref.last));
    const good = await evaluateCase(dir);
    assert.equal(good.status, 'PASS', formatResult(good, true));
    assert.equal(good.checks.length, 5);

    await writeSafetensors(join(dir, 'io.safetensors'), io(map(ref.last, (x) => x + 1e-2)));
    const bad = await evaluateCase(dir);
    assert.equal(bad.status, 'FAIL');
    assert.deepEqual(bad.checks.filter((c) => !c.pass).map((c) => c.name), ['last_hidden_state']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('attention is causal: changing a later token leaves every earlier position unchanged', async () => {
  const c = loadCase(golden('clip-text-l'));
  const enc = await loadClipTextEncoder(c.file('weights.safetensors'), c.config, {
    outputs: ['penultimate', 'last_hidden_state'], ...THREADS,
  });
  try {
    const ids = [0, 17, 230, 45, 8, 301, 77, 2, 1, 1, 1, 1];
    const changed = [...ids];
    changed[6] = 512;
    const [a, b] = [await enc.encode(ids, 1, ids.length), await enc.encode(changed, 1, changed.length)];
    const D = a.hidden;
    for (const field of ['penultimate', 'lastHidden'] as const) {
      assert.deepEqual(b[field]!.subarray(0, 6 * D), a[field]!.subarray(0, 6 * D), `${field}: positions 0-5`);
      for (let s = 6; s < ids.length; s++) {
        assert.notDeepEqual(b[field]!.subarray(s * D, (s + 1) * D), a[field]!.subarray(s * D, (s + 1) * D), `${field}: position ${s}`);
      }
    }
  } finally {
    await enc.dispose();
  }
});

test('the sequence length is dynamic and a one-layer model returns the embeddings as the penultimate state', async () => {
  const cfg = { ...TINY, num_hidden_layers: 1, hidden_act: 'quick_gelu', eos_token_id: 2 };
  const w = tinyWeights(cfg, 7);
  const enc = await loadClipTextEncoder(asWeights(w), cfg, THREADS);
  try {
    assert.deepEqual(enc.outputs, ['penultimate', 'last_hidden_state', 'pooled', 'text_embeds']);
    for (const seqLen of [3, 12]) {
      const ids = Array.from({ length: 2 * seqLen }, (_, i) => (i * 7 + 3) % cfg.vocab_size);
      const out = await enc.encode(Int32Array.from(ids), 2, seqLen);
      const ref = referenceForward(cfg, w, ids, 2, seqLen);
      assertClose(out.penultimate!, ref.penultimate, { atol: 1e-6 }, 'embeddings');
      assertClose(out.lastHidden!, ref.last, { atol: 2e-5, rtol: 1e-4 }, 'last_hidden_state');
      assertClose(out.textEmbeds!, ref.textEmbeds, { atol: 2e-5, rtol: 1e-4 }, 'text_embeds (legacy argmax pooling)');
    }
  } finally {
    await enc.dispose();
  }
});

test('a compiled encoder is cached on disk and found again by the next load', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-cache-'));
  try {
    const w = asWeights(tinyWeights(TINY));
    const load = () => loadClipTextEncoder(w, TINY, { cacheDir: dir, weightsHash: 'tiny-1', outputs: ['text_embeds'], ...THREADS });
    const first = await load();
    const second = await load();
    try {
      assert.equal(first.cacheHit, false);
      assert.equal(second.cacheHit, true);
      const ids = TINY_IDS.slice(0, 9);
      assert.deepEqual((await second.encode(ids, 1, 9)).textEmbeds, (await first.encode(ids, 1, 9)).textEmbeds);
    } finally {
      await Promise.all([first.dispose(), second.dispose()]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('weights that do not fit the config are refused by name', () => {
  const w = tinyWeights(TINY);
  assert.throws(
    () => buildClipTextGraph({ ...TINY, intermediate_size: 32 }, asWeights(w), { outputs: ['penultimate'] }),
    (e: unknown) => e instanceof EngineError && e.code === 'bad_weights' && /layers\.0\.mlp\.fc1\.weight is \[24, 16\].*\[32, 16\]/.test(e.message),
  );
  w.delete('text_model.final_layer_norm.bias');
  assert.throws(() => buildClipTextGraph(TINY, asWeights(w), { outputs: ['pooled'] }), /final_layer_norm\.bias is missing/);
});

test('token ids outside the vocabulary or beyond the positions are refused before running', async () => {
  const enc = await loadClipTextEncoder(asWeights(tinyWeights(TINY)), TINY, { outputs: ['penultimate'], ...THREADS });
  try {
    await assert.rejects(enc.encode([0, 40, 2], 1, 3), (e: unknown) => e instanceof EngineError && e.code === 'bad_token_ids' && /outside the vocabulary/.test(e.message));
    await assert.rejects(enc.encode(new Array<number>(13).fill(1), 1, 13), /13 tokens exceed the model's 12 positions/);
    await assert.rejects(enc.encode([0, 1, 2], 2, 3), /3 ids for batch 2/);
  } finally {
    await enc.dispose();
  }
});
