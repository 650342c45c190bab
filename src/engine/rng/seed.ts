import { EngineError } from '../errors.js';

/**
 * Anything that can draw standard-normal noise of a given shape, in row-major order.
 * Schedulers take this for ancestral / DDPM noise so that callers pick the generator
 * (torch CPU mt19937 or the A1111 Philox CUDA emulation) once, at the edge.
 */
export interface NoiseSource {
  randn(shape: readonly number[]): Float32Array;
}

/** Seeds are unsigned 64-bit, as torch.Generator.manual_seed accepts them. */
export const MAX_SEED = (1n << 64n) - 1n;

const DECIMAL = /^[0-9]+$/;

function badSeed(input: unknown, why: string): EngineError {
  return new EngineError(
    'bad_seed',
    `invalid seed ${JSON.stringify(String(input))}: ${why}; use a whole number from 0 to ${MAX_SEED}`,
  );
}

/**
 * Parses a user-supplied seed into 0..2^64-1.
 * Strings must be plain decimal digits (the service receives seeds like "3572004920"), because
 * hex, exponents or signs would make two spellings of one seed silently disagree.
 * Numbers must be safe integers: above 2^53 a JS number has already lost digits, so such seeds
 * must arrive as strings or bigints.
 */
export function parseSeed(input: string | number | bigint): bigint {
  let value: bigint;
  if (typeof input === 'bigint') {
    value = input;
  } else if (typeof input === 'number') {
    if (!Number.isInteger(input)) throw badSeed(input, 'not a whole number');
    if (!Number.isSafeInteger(input)) {
      throw badSeed(input, 'too large to be exact as a number (pass it as a decimal string)');
    }
    value = BigInt(input);
  } else if (typeof input === 'string') {
    const text = input.trim();
    if (!DECIMAL.test(text)) throw badSeed(input, 'not a decimal number');
    value = BigInt(text);
  } else {
    throw badSeed(input, 'not a string or number');
  }
  if (value < 0n) throw badSeed(input, 'negative');
  if (value > MAX_SEED) throw badSeed(input, 'larger than 2^64-1');
  return value;
}
