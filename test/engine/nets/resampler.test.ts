// InstantID's Resampler: the golden, loading from the real ip-adapter.bin, the config read from the
// weights, and the pipeline's image prompt tokens [Resampler(0); Resampler(face)].
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { loadResampler } from '../../../src/engine/nets/resampler.js';
import { golden } from '../../helpers/paths.js';
import { cat, close, goldenIo, maxAbsDiff, tempDir } from './fixtures.js';

const tmp = tempDir('likeness-resampler-');
after(() => tmp.remove());
const options = { cacheDir: join(tmp.dir, 'cache'), session: { intraOpThreads: 1 } };
const binPath = join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin');

test('golden instantid-resampler: image prompt tokens match InstantID', async () => {
  const r = await evaluateCase(golden('instantid-resampler'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('the config comes from image_proj.* shapes; a width that does not split into 64-wide heads asks for heads', async () => {
  await assert.rejects(loadResampler(binPath, options), /heads/);
  const runner = await loadResampler(binPath, { ...options, heads: 4 });
  try {
    assert.deepEqual(runner.config, { dim: 32, depth: 2, dimHead: 8, heads: 4, numQueries: 4, embeddingDim: 24, outputDim: 64, ffMult: 2 });
  } finally {
    await runner.dispose();
  }
});

test('from ip-adapter.bin (torch pickle) it gives the golden tokens, for [B, 1, E] and [B, E] inputs', async () => {
  const io = goldenIo('instantid-resampler');
  const runner = await loadResampler(binPath, { ...options, heads: 4 });
  try {
    const e = io.get('image_embeds'); // [2, 1, 24]
    const out = await runner.run(e);
    assert.deepEqual(out.dims, [2, 4, 64]);
    const c = close(out.data, io.get('image_prompt_tokens').data);
    assert.ok(c.ok, `${c.err} > ${c.allowed}`);
    const flat = await runner.run({ dtype: 'float32', dims: [2, 24], data: e.data });
    assert.ok(maxAbsDiff(flat.data, out.data) === 0);
  } finally {
    io.close();
    await runner.dispose();
  }
});

test('the pipeline\'s image tokens are [Resampler(0); Resampler(face)], Resampler(0) computed once', async () => {
  const io = goldenIo('instantid-pipeline-multicontrolnet');
  const runner = await loadResampler(binPath, { ...options, heads: 4 });
  try {
    const zero = await runner.zeroTokens();
    assert.equal(await runner.zeroTokens(), zero);
    const face = await runner.run(io.get('image_embeds')); // [1, 24] → [1, 4, 64]
    const c = close(cat([zero, face], 0).data, io.get('prompt_image_emb').data);
    assert.ok(c.ok, `${c.err} > ${c.allowed}`);
  } finally {
    io.close();
    await runner.dispose();
  }
});
