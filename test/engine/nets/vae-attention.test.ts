// The VAE's attention form: the CPU default is the fused MultiHeadAttention (no [h·w, h·w] score
// matrix; docs/benchmarks.md, Memory), which decodes and encodes what the MatMul/Softmax/MatMul
// graph does within float32 rounding; the form is part of the compile-cache key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCase } from '../../../src/engine/golden/case.js';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { loadVaeDecoder, loadVaeEncoder, vaeAttentionMode, type VaeWeights } from '../../../src/engine/nets/vae.js';
import type { AttentionMode, HostTensor } from '../../../src/engine/onnx/index.js';
import { golden } from '../../helpers/paths.js';
import { assertClose } from '../../helpers/reference-ops.js';

const vaeCase = loadCase(golden('vae'));
const config = vaeCase.config;

function withWeights<T>(fn: (w: VaeWeights) => Promise<T>): Promise<T> {
  const file = openWeights(vaeCase.file('weights.safetensors'));
  return fn(file).finally(() => file.close());
}

function wave(dims: number[], k: number): HostTensor<'float32'> {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims, data: new Float32Array(n).map((_, i) => Math.sin(i * k) * 1.5) };
}

test('the CPU default is the fused form; GPU builds keep MatMul/Softmax/MatMul unless they ask', () => {
  assert.equal(vaeAttentionMode(), 'fused');
  assert.equal(vaeAttentionMode('cpu'), 'fused');
  assert.equal(vaeAttentionMode('cuda'), 'plain');
  assert.equal(vaeAttentionMode('tensorrt'), 'plain');
});

test('fused and plain attention decode and encode the same within float32 rounding (a 24×20 latent: 480 positions)', async () => {
  await withWeights(async (weights) => {
    const latent = wave([1, 4, 24, 20], 0.37);
    const image = wave([1, 3, 64, 48], 0.11);
    const run = async (attention: AttentionMode): Promise<[Float32Array, Float32Array]> => {
      const decoder = await loadVaeDecoder({ config, weights }, { attention, intraOpThreads: 1 });
      const encoder = await loadVaeEncoder({ config, weights }, { attention, intraOpThreads: 1 });
      try {
        return [(await decoder.decode(latent)).data, (await encoder.encode(image)).mean.data];
      } finally {
        await decoder.dispose();
        await encoder.dispose();
      }
    };
    const [plainImage, plainMean] = await run('plain');
    const [fusedImage, fusedMean] = await run('fused');
    // Different summation orders, carried through the up blocks' convolutions: within 1e-5 of the
    // output's range (the golden's float64-vs-float32 tolerance is far looser).
    const range = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(fusedImage, plainImage, { atol: 1e-5 * range(plainImage), rtol: 0 }, 'decoded image');
    assertClose(fusedMean, plainMean, { atol: 1e-5 * range(plainMean), rtol: 0 }, 'latent mean');
  });
});

test('the attention form is part of the compile-cache key: each form compiles its own graph', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-vae-attention-'));
  try {
    await withWeights(async (weights) => {
      for (const attention of ['plain', 'fused', 'fused'] as const) {
        const decoder = await loadVaeDecoder({ config, weights }, { attention, intraOpThreads: 1, cache: { dir, weightsHash: 'w' } });
        await decoder.dispose();
      }
    });
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('vae-decoder')).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
