/**
 * AUTOMATIC1111's "NV" noise source (`modules/rng_philox.py`): an emulation of
 * `torch.randn(shape, device='cuda')` that runs anywhere, so A1111 seeds reproduce their images
 * without an NVIDIA GPU. Philox4x32-10 keyed by the 64-bit seed, one counter per element, then a
 * curand-style Box–Muller that keeps only the sine half.
 *
 * Precision follows the numpy reference: uint32 × float32-array promotes to float64 there, so the
 * uniforms, log, sqrt and sin are all double and the result is rounded to float32 once.
 */
import { parseSeed, type NoiseSource } from './seed.js';
import { shapeSize } from './torch-cpu.js';

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const ROUNDS = 10;

// The reference's float32 constants (2^-32 and 2^-32·2π as numpy float32 arrays), used in double.
const TWO_POW32_INV = Math.fround(2.3283064e-10);
const TWO_POW32_INV_2PI = Math.fround(2.3283064e-10 * 6.2831855);

/** The high 32 bits of the 64-bit product a·b of two uint32 values (exact, via 16-bit limbs). */
function mulHi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const loLo = aLo * bLo;
  const hiLo = aHi * bLo;
  const loHi = aLo * bHi;
  const cross = (loLo >>> 16) + (hiLo & 0xffff) + loHi; // < 2^34: exact in a double
  return (aHi * bHi + (hiLo >>> 16) + Math.floor(cross / 0x10000)) >>> 0;
}

/**
 * Philox4x32-10 on counter (c0, 0, c2, 0) and key (k0, k1); writes output words 0 and 1 (the only
 * ones the Box–Muller step reads) to out.
 */
export function philox4x32(c0: number, c2: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0;
  let x1 = 0;
  let x2 = c2 >>> 0;
  let x3 = 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < ROUNDS; round++) {
    const hi0 = mulHi32(x0, PHILOX_M0);
    const lo0 = Math.imul(x0, PHILOX_M0) >>> 0;
    const hi2 = mulHi32(x2, PHILOX_M1);
    const lo2 = Math.imul(x2, PHILOX_M1) >>> 0;
    x0 = (hi2 ^ x1 ^ key0) >>> 0;
    x1 = lo2;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    // The reference bumps the key between rounds only; a bump after the last round is never read.
    key0 = (key0 + PHILOX_W0) >>> 0;
    key1 = (key1 + PHILOX_W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
}

export class PhiloxGenerator implements NoiseSource {
  private keyLo = 0;
  private keyHi = 0;
  private seedValue = 0n;
  /** Counter word 0: bumped once per randn call, as A1111's Generator.offset. */
  private offset = 0;

  constructor(seed: bigint | number | string = 0n) {
    this.manualSeed(seed);
  }

  /** Sets the seed (all 64 bits are the Philox key) and restarts the call offset at 0. */
  manualSeed(seed: bigint | number | string): this {
    this.seedValue = parseSeed(seed);
    this.keyLo = Number(this.seedValue & 0xffffffffn);
    this.keyHi = Number(this.seedValue >> 32n);
    this.offset = 0;
    return this;
  }

  initialSeed(): bigint {
    return this.seedValue;
  }

  /** How many randn calls this generator has made since it was seeded. */
  callOffset(): number {
    return this.offset;
  }

  randn(shape: readonly number[]): Float32Array {
    // shapeSize caps n at 2^31, within the 2^32 elements that counter word 2 can index.
    const n = shapeSize(shape);
    const out = new Float32Array(n);
    const words = new Uint32Array(2);
    const offset = this.offset >>> 0;
    for (let i = 0; i < n; i++) {
      philox4x32(offset, i, this.keyLo, this.keyHi, words);
      const u = words[0]! * TWO_POW32_INV + TWO_POW32_INV / 2;
      const v = words[1]! * TWO_POW32_INV_2PI + TWO_POW32_INV_2PI / 2;
      out[i] = Math.sqrt(-2 * Math.log(u)) * Math.sin(v);
    }
    this.offset++;
    return out;
  }
}
