// likeness cache ls | prune — the compile cache ($LIKENESS_HOME/cache/onnx): what is there, and
// trimming it to a size (least recently used first, never an entry a running process holds).
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import { cacheMaxBytes, listCacheEntries, parseByteSize, pruneCache, type CacheEntry } from '../engine/onnx/cache.js';
import { fail, fileSize, parseVerb } from './args.js';

const HELP = `usage:
  likeness cache ls [--home DIR]
  likeness cache prune [--home DIR] [--max-bytes N]

The compile cache holds the ONNX graphs built from your weight files ($LIKENESS_HOME/cache/onnx), so
a model compiles once. It is kept under LIKENESS_CACHE_MAX_BYTES (default 32G) by evicting the least
recently used entries after each compile; an entry a running Likeness holds is never evicted.

  ls      one line per entry: name, net, weights id, size, last use (least recent first), in use
  prune   evict least recently used entries until the cache fits --max-bytes (bytes or K/M/G/T;
          default LIKENESS_CACHE_MAX_BYTES); --max-bytes 0 removes every entry not in use`;

function table(entries: readonly CacheEntry[]): string {
  const rows = entries.map((e) => [e.name, e.net, e.weightsHash.slice(0, 16), fileSize(e.bytes), e.lastUse.toISOString().replace(/\.\d+Z$/, 'Z'), e.inUse ? 'in use' : '']);
  const head = ['entry', 'net', 'weights', 'size', 'last use', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseVerb(args, { home: { type: 'string' }, 'max-bytes': { type: 'string' } }, HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals, action } = parsed;
  const extra = positionals.slice(1);
  if ((action !== 'ls' && action !== 'prune') || extra.length > 0) return fail(`unknown cache command "${positionals.join(' ')}"\n\n${HELP}`);
  const dir = join(loadConfig(values.home ? { home: values.home } : {}).home, 'cache', 'onnx');
  let maxBytes: number;
  try {
    maxBytes = values['max-bytes'] !== undefined ? parseByteSize(values['max-bytes'], '--max-bytes') : cacheMaxBytes();
  } catch (err) {
    return fail((err as Error).message);
  }
  if (action === 'ls') {
    if (values['max-bytes'] !== undefined) return fail('--max-bytes goes with prune');
    const entries = listCacheEntries(dir);
    const total = entries.reduce((n, e) => n + e.bytes, 0);
    if (entries.length > 0) console.log(table(entries));
    console.log(`${entries.length} entries, ${fileSize(total)} in ${dir} (bound ${fileSize(maxBytes)})`);
    return 0;
  }
  const removed = await pruneCache(dir, { maxBytes });
  const left = listCacheEntries(dir);
  const freed = removed.reduce((n, e) => n + e.bytes, 0);
  for (const e of removed) console.log(`removed ${e.name} (${fileSize(e.bytes)}, last used ${e.lastUse.toISOString()})`);
  console.log(`freed ${fileSize(freed)}; ${left.length} entries, ${fileSize(left.reduce((n, e) => n + e.bytes, 0))} left in ${dir} (bound ${fileSize(maxBytes)})`);
  return 0;
}
