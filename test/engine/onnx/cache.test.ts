// The compile cache: a second load is a hit, keys separate what differs, writes are atomic.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import {
  cacheMaxBytes, cachedModelPath, canonicalJson, compileCached, fingerprintFiles, listCacheEntries, parseByteSize, pruneCache, type CacheKey,
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
  assert.deepEqual(readdirSync(first.dir).sort(), [`.held-${process.pid}`, 'key.json', 'model.onnx', 'model.onnx.data'], 'the model, its data, its key and our hold');
  const s = await createSession(first.modelPath, { intraOpThreads: 1 });
  await s.dispose();
  first.release();
  assert.ok(!readdirSync(first.dir).includes(`.held-${process.pid}`));
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

test('the cache stays under its bound: least recently used entries go first, never one in use', async () => {
  const dir = join(root, 'bounded');
  const k = (n: number): CacheKey => ({ ...key, weightsHash: `bound-${n}` });
  const one = await compileCached(dir, k(1), counted().build);
  const size = listCacheEntries(dir)[0]!.bytes;
  assert.ok(size > 0);
  const two = await compileCached(dir, k(2), counted().build);
  two.release();
  await new Promise((r) => setTimeout(r, 20));
  const three = await compileCached(dir, k(3), counted().build);
  three.release();
  // entry 1 is the oldest but held; 2 is the least recently used free one
  await new Promise((r) => setTimeout(r, 20));
  (await compileCached(dir, k(2), counted().build)).release(); // a hit: 2 becomes the most recent
  const four = await compileCached(dir, k(4), counted().build, { maxBytes: 2 * size + size / 2 });
  const left = listCacheEntries(dir).map((e) => e.weightsHash);
  assert.deepEqual(left.sort(), ['bound-1', 'bound-4'].sort(),
    'over the bound, 3 (least recently used) then 2 were evicted; 1 is in use and 4 was just written');
  assert.ok(listCacheEntries(dir).find((e) => e.weightsHash === 'bound-1')!.inUse);
  one.release();
  four.release();
  assert.ok(listCacheEntries(dir).every((e) => !e.inUse), 'release() ends the use');
  const removed = await pruneCache(dir, { maxBytes: size });
  assert.deepEqual(removed.map((e) => e.weightsHash), ['bound-1'], 'prune keeps the most recent that fit');
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('.tmp')).length, 0, 'no eviction leftovers');
});

test('a hold by another living process keeps an entry; one by a dead process does not', async () => {
  const dir = join(root, 'held-elsewhere');
  const e = await compileCached(dir, { ...key, weightsHash: 'other' }, counted().build);
  e.release();
  writeFileSync(join(e.dir, `.held-${process.ppid}`), ''); // the test runner: alive
  assert.deepEqual(await pruneCache(dir, { maxBytes: 0 }), []);
  rmSync(join(e.dir, `.held-${process.ppid}`));
  writeFileSync(join(e.dir, '.held-999999999'), ''); // no such process
  assert.equal((await pruneCache(dir, { maxBytes: 0 })).length, 1);
});

test('LIKENESS_CACHE_MAX_BYTES takes bytes or K/M/G/T; a bad value is named', () => {
  assert.equal(cacheMaxBytes({}), 32 * 2 ** 30);
  assert.equal(cacheMaxBytes({ LIKENESS_CACHE_MAX_BYTES: '1000' }), 1000);
  assert.equal(cacheMaxBytes({ LIKENESS_CACHE_MAX_BYTES: '64G' }), 64 * 2 ** 30);
  assert.equal(cacheMaxBytes({ LIKENESS_CACHE_MAX_BYTES: '1.5GiB' }), 1.5 * 2 ** 30);
  assert.equal(parseByteSize('512m', 'x'), 512 * 2 ** 20);
  assert.throws(() => cacheMaxBytes({ LIKENESS_CACHE_MAX_BYTES: 'lots' }), /LIKENESS_CACHE_MAX_BYTES="lots" is not a size/);
});
