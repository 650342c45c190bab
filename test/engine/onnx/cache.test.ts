// The compile cache: a second load is a hit, keys separate what differs, writes are atomic.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import {
  cachedModelPath, canonicalJson, compileCached, fingerprintFiles, type CacheKey,
} from '../../../src/engine/onnx/cache.js';
import { createSession } from '../../../src/engine/onnx/session.js';

const root = mkdtempSync(join(tmpdir(), 'likeness-cache-'));
after(() => rmSync(root, { recursive: true, force: true }));

const key: CacheKey = { net: 'tiny', weightsHash: 'abc', dtype: 'float32', config: { channels: 4, heads: 2 } };

function counted(): { build: () => ReturnType<GraphBuilder['build']>; count: () => number } {
  let n = 0;
  return {
    build: () => {
      n++;
      const g = new GraphBuilder();
      const w = g.param('w', [4, 4], new Float32Array(16).fill(0.25));
      g.output(g.linear(g.input('x', [1, 4]), w), 'y');
      return g.build();
    },
    count: () => n,
  };
}

test('the second compile of the same key is a cache hit', async () => {
  const dir = join(root, 'hit');
  const b = counted();
  const first = await compileCached(dir, key, b.build);
  assert.equal(first.hit, false);
  const second = await compileCached(dir, { ...key, config: { heads: 2, channels: 4 } }, b.build);
  assert.equal(second.hit, true);
  assert.equal(second.modelPath, first.modelPath);
  assert.equal(b.count(), 1);
  assert.equal(cachedModelPath(dir, key), first.modelPath);
  const s = await createSession(second.modelPath, { intraOpThreads: 1 });
  const r = await s.run({ x: { dtype: 'float32', dims: [1, 4], data: Float32Array.from([1, 1, 1, 1]) } });
  assert.deepEqual(Array.from(r['y']!.data as Float32Array), [1, 1, 1, 1]);
  await s.dispose();
});

test('builder version, weights, dtype and config each change the entry', async () => {
  const dir = join(root, 'keys');
  const b = counted();
  const paths = new Set<string>();
  for (const k of [
    key,
    { ...key, weightsHash: 'abd' },
    { ...key, dtype: 'float16' as const },
    { ...key, config: { channels: 8, heads: 2 } },
    { ...key, builderVersion: 999 },
  ]) paths.add((await compileCached(dir, k, b.build)).modelPath);
  assert.equal(paths.size, 5);
  assert.equal(b.count(), 5);
});

test('concurrent compiles of one key build once and leave no temporaries', async () => {
  const dir = join(root, 'concurrent');
  const b = counted();
  const results = await Promise.all([1, 2, 3].map(() => compileCached(dir, key, b.build)));
  assert.equal(b.count(), 1);
  assert.equal(new Set(results.map((r) => r.modelPath)).size, 1);
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.tmp-')), []);
});

test('a failing build leaves nothing behind', async () => {
  const dir = join(root, 'failing');
  await assert.rejects(compileCached(dir, key, () => { throw new Error('boom'); }), /boom/);
  assert.deepEqual(readdirSync(dir), []);
  const b = counted();
  assert.equal((await compileCached(dir, key, b.build)).hit, false);
});

test('large models are cached with their external data', async () => {
  const dir = join(root, 'external');
  const b = counted();
  const first = await compileCached(dir, key, b.build, { externalDataThreshold: 0, minExternalBytes: 0 });
  assert.deepEqual(readdirSync(first.dir).sort(), ['key.json', 'model.onnx', 'model.onnx.data']);
  const s = await createSession(first.modelPath, { intraOpThreads: 1 });
  await s.dispose();
});

test('canonicalJson sorts keys at every depth', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: 3n } }), '{"a":{"c":"3","d":[2,{"x":2,"y":1}]},"b":1}');
});

test('fingerprintFiles sees changes in its samples; full mode sees every byte', async () => {
  const a = join(root, 'a.bin');
  const bytes = Buffer.alloc(3 * 2 ** 20, 7);
  writeFileSync(a, bytes);
  const sampled = await fingerprintFiles([a]);
  const full = await fingerprintFiles([a], { full: true });
  assert.equal(await fingerprintFiles([a]), sampled);
  bytes[1_200_000] = 1; // between two sampled blocks
  writeFileSync(a, bytes);
  assert.equal(await fingerprintFiles([a]), sampled);
  assert.notEqual(await fingerprintFiles([a], { full: true }), full);
  bytes[Math.floor((bytes.length * 8) / 17) + 10] = 1; // inside a sampled block
  writeFileSync(a, bytes);
  assert.notEqual(await fingerprintFiles([a]), sampled);
});
