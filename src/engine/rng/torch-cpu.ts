/**
 * torch's CPU generator: `torch.Generator().manual_seed(seed)` followed by `torch.randn` / `torch.rand`
 * on float32 tensors, reproduced bit for bit (torch 1.13 on an AVX2 CPU; ComfyUI and A1111's "CPU"
 * noise draw their initial latents this way). torch itself gives other low bits on a CPU without
 * AVX2 (its generic kernel uses libm's logf/cosf); we follow the AVX2 build, which is what real
 * servers run and what the goldens were computed with. References: ATen `core/TransformationHelper.h`
 * (uniform_real), `core/DistributionsHelper.h` (normal_distribution), `native/cpu/DistributionKernels.cpp`
 * and `DistributionTemplates.h` (normal_kernel, normal_fill_AVX2), `CPUGeneratorImpl.cpp`.
 */
import { EngineError } from '../errors.js';
import { logF32, sincosF32 } from './avx-mathfun.js';
import { Mt19937 } from './mt19937.js';
import { parseSeed, type NoiseSource } from './seed.js';

/** torch's `default_rng_seed_val`: what an unseeded `torch.Generator()` starts from. */
export const TORCH_DEFAULT_SEED = 67280421310721n;

/** Below this many elements (or for non-float32 work) torch takes the scalar double-precision path. */
const CHUNK = 16;
const HALF_CHUNK = 8;

const F32_UNIT = 2 ** -24;
const F64_UNIT = 2 ** -53;
const HI_F64_BITS = 2 ** 21; // a double uniform keeps the low 21 bits of the first word and all 32 of the second
const TWO_PI_F32 = Math.fround(2 * Math.PI);

/** Element count of a shape; rejects anything that is not a list of non-negative integers. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new EngineError('bad_shape', `invalid tensor shape [${shape.join(', ')}]: dimensions must be non-negative integers`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n) || n > 2 ** 31) {
    throw new EngineError('bad_shape', `tensor shape [${shape.join(', ')}] has too many elements to draw`);
  }
  return n;
}

export class TorchGenerator implements NoiseSource {
  private readonly engine = new Mt19937();
  private seedValue = TORCH_DEFAULT_SEED;
  /** torch keeps the second Box–Muller value of the scalar path in the generator, across calls. */
  private nextDoubleNormal: number | undefined;
  private readonly sincos = new Float64Array(2);

  constructor(seed: bigint | number | string = TORCH_DEFAULT_SEED) {
    this.manualSeed(seed);
  }

  /**
   * Reseeds like `Generator.manual_seed`. Seeds are 0..2^64-1, but mt19937 is seeded with the low
   * 32 bits only (so seeds 5 and 2^32+5 draw the same numbers); the cached normal is dropped.
   */
  manualSeed(seed: bigint | number | string): this {
    this.seedValue = parseSeed(seed);
    this.engine.seed(Number(this.seedValue & 0xffffffffn));
    this.nextDoubleNormal = undefined;
    return this;
  }

  /** The full seed as given, like `Generator.initial_seed()` (not reduced to 32 bits). */
  initialSeed(): bigint {
    return this.seedValue;
  }

  /** `torch.rand(shape)` in float32: one 32-bit draw per element, its low 24 bits · 2^-24. */
  rand(shape: readonly number[]): Float32Array {
    const out = new Float32Array(shapeSize(shape));
    this.fillUniformF32(out);
    return out;
  }

  /** `torch.rand(shape, dtype=torch.float64)`: two draws per element, 53 bits. */
  randFloat64(shape: readonly number[]): Float64Array {
    const out = new Float64Array(shapeSize(shape));
    for (let i = 0; i < out.length; i++) out[i] = this.uniformF64();
    return out;
  }

  /**
   * `torch.randn(shape)` in float32. With 16 or more elements torch fills the tensor with float32
   * uniforms and transforms them in blocks of 16 (Box–Muller on pairs j, j+8), recomputing the last 16
   * from fresh uniforms when the size is not a multiple of 16; with fewer it runs the scalar
   * double-precision path, which caches every second normal in the generator.
   */
  randn(shape: readonly number[]): Float32Array {
    const n = shapeSize(shape);
    const out = new Float32Array(n);
    if (n < CHUNK) {
      for (let i = 0; i < n; i++) out[i] = this.normalF64();
      return out;
    }
    this.fillUniformF32(out);
    for (let start = 0; start + CHUNK <= n; start += CHUNK) this.boxMuller16(out, start);
    if (n % CHUNK !== 0) {
      const tail = out.subarray(n - CHUNK);
      this.fillUniformF32(tail);
      this.boxMuller16(tail, 0);
    }
    return out;
  }

  /** One standard normal from the scalar path (`at::normal_distribution<double>`), in double. */
  normalF64(): number {
    const cached = this.nextDoubleNormal;
    if (cached !== undefined) {
      this.nextDoubleNormal = undefined;
      return cached;
    }
    const u1 = this.uniformF64();
    const u2 = this.uniformF64();
    // Unlike the block path, the second uniform feeds the radius; 1 − u2 is exact for a 53-bit u2.
    // Double log/sin/cos from V8 and glibc agree far below the float32 rounding the caller applies.
    const radius = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = radius * Math.sin(theta);
    return radius * Math.cos(theta);
  }

  /** One float64 uniform in [0, 1): the first draw is the high word, masked to 53 bits in all. */
  uniformF64(): number {
    const hi = this.engine.nextUint32() % HI_F64_BITS;
    const lo = this.engine.nextUint32();
    return (hi * 2 ** 32 + lo) * F64_UNIT;
  }

  private fillUniformF32(out: Float32Array): void {
    const words = new Uint32Array(out.length);
    this.engine.fill(words);
    for (let i = 0; i < out.length; i++) out[i] = (words[i]! & 0xffffff) * F32_UNIT;
  }

  /** `normal_fill_16_AVX2` on data[start..start+16): uniforms in, normals out, in place. */
  private boxMuller16(data: Float32Array, start: number): void {
    const sc = this.sincos;
    for (let j = start; j < start + HALF_CHUNK; j++) {
      // 1 − u is exact in float32 and lies in (0, 1], so the log is finite.
      const radius = Math.fround(Math.sqrt(Math.fround(-2 * logF32(1 - data[j]!))));
      sincosF32(Math.fround(TWO_PI_F32 * data[j + HALF_CHUNK]!), sc);
      data[j] = radius * sc[1]!;
      data[j + HALF_CHUNK] = radius * sc[0]!;
    }
  }
}
