// ORT's packed copy of a cache entry (packed-copy.ts): the first CPU open writes it, later opens use it,
// results do not change, a broken copy is replaced, big entries get none by default, and
// LIKENESS_ORT_PACKED_COPY=off writes none.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { compileCached, listCacheEntries, openHeld, type CacheKey } from '../../../src/engine/onnx/cache.js';
import { AUTO_MAX_BYTES, PACKED_PREFIX, packedCopyEnabled, packedCopyHome } from '../../../src/engine/onnx/packed-copy.js';
import { createSession, type Session } from '../../../src/engine/onnx/session.js';

const root = mkdtempSync(join(tmpdir(), 'likeness-packed-'));
after(() => rmSync(root, { recursive: true, force: true }));

const N = 64;
const weights = Float32Array.from({ length: N * N }, (_, i) => Math.sin(i * 0.37) / 8);
const x = Float32Array.from({ length: 2 * N }, (_, i) => Math.cos(i * 0.11));
const key: CacheKey = { net: 'packed-test', weightsHash: 'w1', dtype: 'float32', config: { n: N } };

/** Two Linear layers: constant MatMul weights, which the CPU provider pre-packs. */
function build(): ReturnType<GraphBuilder['build']> {
  const g = new GraphBuilder();
  const h = g.linear(g.input('x', [2, N]), g.param('w1', [N, N], weights));
  g.output(g.linear(h, g.param('w2', [N, N], weights.map((v) => -v))), 'y');
  return g.build();
}

async function openAndRun(dir: string): Promise<{ y: number[]; entry: string }> {
  const compiled = await compileCached(dir, key, build);
  const session: Session = await openHeld(compiled, (path, extra) => createSession(path, { intraOpThreads: 1, ...extra }));
  try {
    const r = await session.run({ x: { dtype: 'float32', dims: [2, N], data: x.slice() } });
    return { y: Array.from(r['y']!.data as Float32Array), entry: compiled.dir };
  } finally {
    await session.dispose();
  }
}

const copies = (entry: string): string[] => readdirSync(entry).filter((f) => f.startsWith(PACKED_PREFIX));

test('the first open writes the packed copy inside the entry; the next opens from it with the same results', async () => {
  const dir = join(root, 'on');
  const first = await openAndRun(dir);
  assert.equal(copies(first.entry).length, 1);
  const copy = join(first.entry, copies(first.entry)[0]!);
  assert.ok(existsSync(join(copy, 'model.onnx')) && existsSync(join(copy, 'weights.bin')));
  // the cache bound counts the copy
  const [entry] = listCacheEntries(dir);
  assert.ok(entry!.bytes > 2 * N * N * 4 * 2, `entry bytes ${entry!.bytes} include the copy`);
  // the plain model made unreadable: only an open from the copy can still succeed
  writeFileSync(join(first.entry, 'model.onnx'), 'not a model');
  const second = await openAndRun(dir);
  assert.deepEqual(second.y, first.y);
  assert.equal(copies(first.entry).length, 1, 'no second copy for the same host');
});

test('an unreadable copy is replaced, and the open still succeeds', async () => {
  const dir = join(root, 'broken');
  const first = await openAndRun(dir);
  const copy = join(first.entry, copies(first.entry)[0]!);
  writeFileSync(join(copy, 'model.onnx'), 'not a model');
  const again = await openAndRun(dir);
  assert.deepEqual(again.y, first.y);
  assert.ok(readFileSync(join(copy, 'model.onnx')).byteLength > 100, 'the copy was written again');
  const third = await openAndRun(dir);
  assert.deepEqual(third.y, first.y);
});

test('by default (auto) an entry of 4 GiB or more gets no copy (its calls ran slower from mapped weights); on gives it one', () => {
  const entry = join(root, 'big-entry');
  mkdirSync(entry, { recursive: true });
  writeFileSync(join(entry, 'key.json'), '{}');
  writeFileSync(join(entry, 'model.onnx'), '');
  writeFileSync(join(entry, 'model.onnx.data'), '');
  truncateSync(join(entry, 'model.onnx.data'), AUTO_MAX_BYTES); // sparse: no disk used
  assert.equal(packedCopyHome(entry, {}), undefined);
  assert.equal(packedCopyHome(entry, { LIKENESS_ORT_PACKED_COPY: 'on' }), entry);
  truncateSync(join(entry, 'model.onnx.data'), AUTO_MAX_BYTES - 4096);
  assert.equal(packedCopyHome(entry, {}), entry);
});

test('LIKENESS_ORT_PACKED_COPY=off writes no copy; a wrong value is refused with the choices', async () => {
  assert.equal(packedCopyEnabled({ LIKENESS_ORT_PACKED_COPY: 'off' }), false);
  assert.equal(packedCopyEnabled({}), true);
  assert.throws(() => packedCopyEnabled({ LIKENESS_ORT_PACKED_COPY: 'maybe' }), /LIKENESS_ORT_PACKED_COPY="maybe": use auto, on or off/);
  const dir = join(root, 'off');
  const compiled = await compileCached(dir, key, build);
  assert.equal(packedCopyHome(compiled.dir, { LIKENESS_ORT_PACKED_COPY: 'off' }), undefined);
  assert.equal(packedCopyHome(join(root, 'not-an-entry')), undefined, 'only cache entries get copies');
  const session = await createSession(compiled.modelPath, { intraOpThreads: 1 });
  await session.dispose();
  compiled.release();
  assert.deepEqual(copies(compiled.dir), []);
});
