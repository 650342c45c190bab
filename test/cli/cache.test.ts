// likeness cache ls | prune: lists the compile cache's entries and trims it, never an entry in use.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/cache.js';
import { compileCached, listCacheEntries } from '../../src/engine/onnx/cache.js';
import { GraphBuilder } from '../../src/engine/onnx/graph.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-cache-cli-'));
after(() => rmSync(home, { recursive: true, force: true }));

function build(): ReturnType<GraphBuilder['build']> {
  const g = new GraphBuilder();
  g.output(g.linear(g.input('x', [1, 4]), g.param('w', [4, 4], new Float32Array(16).fill(0.5))), 'y');
  return g.build();
}

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  try {
    return { code: await run(args), out: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

test('ls lists entries (net, size, last use, in use); prune --max-bytes 0 removes all but the held one', async () => {
  const dir = join(home, 'cache', 'onnx');
  const held = await compileCached(dir, { net: 'unet', weightsHash: 'aaaa', dtype: 'float32', config: {} }, build);
  (await compileCached(dir, { net: 'vae-decoder', weightsHash: 'bbbb', dtype: 'float32', config: {} }, build)).release();
  const ls = await cli(['ls', '--home', home]);
  assert.equal(ls.code, 0);
  assert.match(ls.out, /^entry\s+net\s+weights\s+size\s+last use/m);
  assert.match(ls.out, /unet-float32-\S+\s+unet\s+aaaa\s+[\d.]+ KiB\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+in use/);
  assert.match(ls.out, /vae-decoder-float32-\S+\s+vae-decoder\s+bbbb/);
  assert.match(ls.out, /^2 entries, [\d.]+ KiB in .* \(bound 32\.00 GiB\)$/m);
  const prune = await cli(['prune', '--home', home, '--max-bytes', '0']);
  assert.equal(prune.code, 0);
  assert.match(prune.out, /^removed vae-decoder-float32-/m);
  assert.deepEqual(listCacheEntries(dir).map((e) => e.net), ['unet'], 'the entry in use stays');
  held.release();
  assert.equal((await cli(['prune', '--home', home, '--max-bytes', 'lots'])).code, 2, 'a bad size is refused');
});
