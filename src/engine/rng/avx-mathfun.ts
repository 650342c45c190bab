/**
 * One lane of torch's `avx_mathfun.h` (`log256_ps`, `sincos256_ps`: Cephes polynomials in float32),
 * which is what torch's CPU `randn` runs on any AVX2 machine. Reproducing it operation by operation
 * is what makes our latents bit-identical to torch's instead of 1–2 ulp off (a correctly rounded
 * log/cos/sin differs from these polynomials in about a third of the values).
 *
 * Every float32 operation is `Math.fround` of the exact double result, which is how IEEE float32
 * arithmetic is defined. torch's AVX2 kernels are compiled with FMA enabled and GCC contracts
 * `_mm256_mul_ps` + `_mm256_add_ps` into one fused multiply-add; where both addends are products it
 * fuses the first (the running polynomial value). The `fma32` calls below sit exactly where that
 * contraction happens; with them every value of the goldens' 65536-element randn is bit-identical,
 * and without the two "chain operand" fusions (marked below) it is not.
 */

const f32 = Math.fround;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The float32 next to `x` (a nonzero float32) in the direction of `up`. */
function neighbourF32(x: number, up: boolean): number {
  scratchF32[0] = x;
  scratchU32[0] = (x > 0) === up ? scratchU32[0]! + 1 : scratchU32[0]! - 1;
  return scratchF32[0]!;
}

/**
 * Fused multiply-add rounded once to float32, for float32 inputs. The product of two float32 values
 * is exact in a double, so only the sum rounds twice (to double, then to float32); that double
 * rounding can only go wrong when the double sum lands exactly on a float32 midpoint, which the
 * TwoSum error term resolves.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f32(s);
  if (r === s) return r;
  const bv = s - p;
  const err = p - (s - bv) + (c - bv);
  if (err === 0) return r;
  const other = neighbourF32(r, r < s);
  if ((r + other) / 2 !== s) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

const mul = (a: number, b: number): number => f32(a * b);
const add = (a: number, b: number): number => f32(a + b);

const ONE = 1;
const HALF = 0.5;

// log256_ps constants (float32, as the header declares them).
const SQRTHF = f32(0.707106781186547524);
const LOG_P0 = f32(7.0376836292e-2);
const LOG_P1 = f32(-1.151461031e-1);
const LOG_P2 = f32(1.167699874e-1);
const LOG_P3 = f32(-1.2420140846e-1);
const LOG_P4 = f32(1.4249322787e-1);
const LOG_P5 = f32(-1.6668057665e-1);
const LOG_P6 = f32(2.0000714765e-1);
const LOG_P7 = f32(-2.4999993993e-1);
const LOG_P8 = f32(3.3333331174e-1);
const LOG_Q1 = f32(-2.1219444e-4);
const LOG_Q2 = f32(0.693359375);

/** `log256_ps` for one positive normal float32 `x` (the callers never pass anything else). */
export function logF32(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  // Split x = m · 2^e with m in [0.5, 1): the exponent from the bits, the mantissa by forcing 2^-1.
  let e = f32((bits >>> 23) - 127 + 1);
  scratchU32[0] = (bits & ~0x7f800000) | 0x3f000000;
  let m = scratchF32[0]!;
  // Recentre m around 1 (m < √½ → 2m − 1 and e − 1) so the polynomial sees |m − 1| < 0.3.
  const small = m < SQRTHF;
  const tmp = small ? m : 0;
  m = add(m, -ONE);
  if (small) e = add(e, -ONE);
  m = add(m, tmp);

  const z = mul(m, m);
  let y = LOG_P0;
  y = fma32(y, m, LOG_P1);
  y = fma32(y, m, LOG_P2);
  y = fma32(y, m, LOG_P3);
  y = fma32(y, m, LOG_P4);
  y = fma32(y, m, LOG_P5);
  y = fma32(y, m, LOG_P6);
  y = fma32(y, m, LOG_P7);
  y = fma32(y, m, LOG_P8);
  y = mul(y, m);
  y = fma32(y, z, mul(e, LOG_Q1)); // chain-operand fusion: y·z + (e·q1), not e·q1 + y·z
  y = fma32(-z, HALF, y);
  return fma32(e, LOG_Q2, add(m, y));
}

// sincos256_ps constants.
const MINUS_DP1 = f32(-0.78515625);
const MINUS_DP2 = f32(-2.4187564849853515625e-4);
const MINUS_DP3 = f32(-3.77489497744594108e-8);
const SIN_P0 = f32(-1.9515295891e-4);
const SIN_P1 = f32(8.3321608736e-3);
const SIN_P2 = f32(-1.6666654611e-1);
const COS_P0 = f32(2.443315711809948e-5);
const COS_P1 = f32(-1.388731625493765e-3);
const COS_P2 = f32(4.166664568298827e-2);
const FOUR_OVER_PI = f32(1.27323954473516);

/** Writes `sincos256_ps(x)` for one lane: out[0] = sin x, out[1] = cos x (float32 values). */
export function sincosF32(x: number, out: Float32Array | Float64Array): void {
  const negative = x < 0;
  let r = Math.abs(x);
  // Octant j (rounded up to even) and the reduction r − j·π/4 in three exact-ish pieces.
  const j = (Math.trunc(mul(r, FOUR_OVER_PI)) + 1) & ~1;
  const flipSin = (j & 4) !== 0;
  const flipCos = (~(j - 2) & 4) !== 0;
  const sinPolyIsSin = (j & 2) === 0;
  r = fma32(j, MINUS_DP1, r);
  r = fma32(j, MINUS_DP2, r);
  r = fma32(j, MINUS_DP3, r);

  const z = mul(r, r);
  let c = fma32(COS_P0, z, COS_P1);
  c = fma32(c, z, COS_P2);
  c = mul(c, z);
  c = fma32(c, z, -mul(z, HALF)); // chain-operand fusion: c·z − (z·½)
  c = add(c, ONE);

  let s = fma32(SIN_P0, z, SIN_P1);
  s = fma32(s, z, SIN_P2);
  s = mul(s, z);
  s = fma32(s, r, r);

  let sin = sinPolyIsSin ? s : c;
  let cos = sinPolyIsSin ? c : s;
  if (flipSin !== negative) sin = -sin;
  if (flipCos) cos = -cos;
  out[0] = sin;
  out[1] = cos;
}
