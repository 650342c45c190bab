// Golden kind `rng`: every entry of config.entries is one draw (fn, seed, shape) from a fresh generator,
// or, when it names a `chain`, the draw_index-th consecutive draw from that chain's one generator.
// Entries are replayed generically; anything the engine cannot replay faithfully fails with a note.
import type { GoldenCase } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { PhiloxGenerator } from '../../rng/philox.js';
import { parseSeed } from '../../rng/seed.js';
import { TorchGenerator } from '../../rng/torch-cpu.js';

type GeneratorKind = 'torch' | 'philox';
type DrawFn = 'randn' | 'rand';

interface Entry {
  name: string;
  kind: GeneratorKind;
  fn: DrawFn;
  seed: bigint;
  shape: number[];
  drawIndex: number;
  chain: string | undefined;
}

/** Why an entry cannot be replayed; reported as a failing check, never skipped. */
class Unreplayable extends Error {}

/** Maps the case's `fn` text to a generator and a draw; the philox fn is A1111's Generator(seed).randn. */
function parseFn(fn: unknown): { kind: GeneratorKind; fn: DrawFn } {
  if (typeof fn !== 'string') throw new Unreplayable('entry has no fn');
  if (/philox/i.test(fn)) {
    if (/\.randn\b/.test(fn)) return { kind: 'philox', fn: 'randn' };
    throw new Unreplayable(`philox fn ${fn} is not a randn draw`);
  }
  const bare = fn.replace(/^torch\./, '');
  if (bare === 'randn' || bare === 'rand') return { kind: 'torch', fn: bare };
  throw new Unreplayable(`unknown fn ${fn}`);
}

/**
 * JSON numbers above 2^53 have lost digits by the time JSON.parse hands them over, so for such
 * seeds the decimal digits in the entry's name (`..._seed<digits>_...`) are used when they agree.
 */
function parseEntrySeed(seed: unknown, name: string): bigint {
  if (typeof seed === 'string' || typeof seed === 'bigint') return parseSeed(seed);
  if (typeof seed !== 'number') throw new Unreplayable('entry has no seed');
  if (Number.isSafeInteger(seed)) return parseSeed(seed);
  const digits = /seed(\d+)/.exec(name)?.[1];
  if (digits !== undefined && Number(digits) === seed) return parseSeed(digits);
  throw new Unreplayable(`seed ${seed} is beyond 2^53 and the entry name does not spell it exactly`);
}

function parseShape(shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Unreplayable('entry has no valid shape');
  }
  return shape as number[];
}

function parseEntry(raw: Record<string, unknown>, name: string): Entry {
  const { kind, fn } = parseFn(raw.fn);
  const drawIndex = raw.draw_index ?? 0;
  if (!Number.isSafeInteger(drawIndex) || (drawIndex as number) < 0) throw new Unreplayable('bad draw_index');
  if (raw.dtype !== undefined && raw.dtype !== 'float32') throw new Unreplayable(`dtype ${String(raw.dtype)} is not replayed`);
  return {
    name,
    kind,
    fn,
    seed: parseEntrySeed(raw.seed, name),
    shape: parseShape(raw.shape),
    drawIndex: drawIndex as number,
    chain: raw.chain === undefined || raw.chain === null ? undefined : String(raw.chain),
  };
}

function draw(generator: TorchGenerator | PhiloxGenerator, e: Entry): Float32Array {
  if (generator instanceof PhiloxGenerator) return generator.randn(e.shape);
  return e.fn === 'rand' ? generator.rand(e.shape) : generator.randn(e.shape);
}

/** A sequence of draws from one generator: a whole chain, or a lone entry with draw_index 0. */
function replay(group: Entry[]): Map<string, Float32Array> {
  const sorted = [...group].sort((a, b) => a.drawIndex - b.drawIndex);
  const first = sorted[0]!;
  sorted.forEach((e, i) => {
    if (e.drawIndex !== i) {
      throw new Unreplayable(`draw ${i} of ${first.chain === undefined ? 'this generator' : `chain ${first.chain}`} is not listed, so draw ${e.drawIndex} cannot be replayed`);
    }
    if (e.kind !== first.kind || e.seed !== first.seed) throw new Unreplayable(`chain ${e.chain} mixes generators or seeds`);
  });
  const generator = first.kind === 'philox' ? new PhiloxGenerator(first.seed) : new TorchGenerator(first.seed);
  return new Map(sorted.map((e) => [e.name, draw(generator, e)]));
}

function failed(name: string, why: string): Check {
  return { name, maxAbsError: Infinity, allowed: 0, pass: false, note: why };
}

export function evaluate(c: GoldenCase): Check[] {
  const rawEntries = c.config.entries;
  if (!Array.isArray(rawEntries)) return [failed('config.entries', 'the case lists no entries')];
  const io = c.io();
  const checks: Check[] = [];
  const groups = new Map<string, Entry[]>();
  rawEntries.forEach((item: unknown, index: number) => {
    const raw = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const name = typeof raw.name === 'string' ? raw.name : `entries[${index}]`;
    try {
      const e = parseEntry(raw, name);
      const key = e.chain === undefined ? `entry:${name}` : `chain:${e.chain}`;
      groups.set(key, [...(groups.get(key) ?? []), e]);
    } catch (err) {
      checks.push(failed(name, (err as Error).message));
    }
  });

  for (const group of groups.values()) {
    let drawn: Map<string, Float32Array>;
    try {
      drawn = replay(group);
    } catch (err) {
      for (const e of group) checks.push(failed(e.name, (err as Error).message));
      continue;
    }
    for (const e of group) {
      if (!io.has(e.name)) {
        checks.push(failed(e.name, 'io.safetensors has no tensor of this name'));
        continue;
      }
      const expectedShape = io.info(e.name).shape;
      if (expectedShape.join('x') !== e.shape.join('x')) {
        checks.push(failed(e.name, `golden tensor is [${expectedShape.join(', ')}], entry says [${e.shape.join(', ')}]`));
        continue;
      }
      checks.push(compareClose(e.name, drawn.get(e.name)!, io.readFloat32(e.name), c.tolerance));
    }
  }
  return checks;
}
