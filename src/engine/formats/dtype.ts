// Tensor element types as safetensors names them, their typed-array views, and exact conversions
// between the float formats. Shared by every weight-file reader and writer in this folder.

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<Dtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);
}

/** Raw tensor data as the typed array that matches its dtype (F16/BF16 as raw Uint16 bits, BOOL as bytes). */
export type TensorData =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** A tensor held in host memory, C-contiguous. */
export interface HostTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The element count, or undefined when it is not a safe integer (a forged shape). */
export function checkedNumel(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Views little-endian bytes as the dtype's typed array; copies only when the bytes are misaligned. */
export function viewAs(dtype: Dtype, bytes: Uint8Array): TensorData {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset } = aligned;
  const n = aligned.byteLength / size;
  switch (dtype) {
    case 'F64': return new Float64Array(buffer, byteOffset, n);
    case 'F32': return new Float32Array(buffer, byteOffset, n);
    case 'F16': case 'BF16': return new Uint16Array(buffer, byteOffset, n);
    case 'I64': return new BigInt64Array(buffer, byteOffset, n);
    case 'I32': return new Int32Array(buffer, byteOffset, n);
    case 'I16': return new Int16Array(buffer, byteOffset, n);
    case 'I8': return new Int8Array(buffer, byteOffset, n);
    case 'U8': case 'BOOL': return aligned;
  }
}

/** Interprets little-endian bytes as the dtype's typed array, always in fresh memory. */
export function typedFromBytes(dtype: Dtype, bytes: Uint8Array): TensorData {
  return viewAs(dtype, bytes.slice());
}

/** Whether `data` is the typed array kind that holds the dtype's elements (what `viewAs` returns). */
export function arrayMatchesDtype(dtype: Dtype, data: TensorData): boolean {
  switch (dtype) {
    case 'F64': return data instanceof Float64Array;
    case 'F32': return data instanceof Float32Array;
    case 'F16': case 'BF16': return data instanceof Uint16Array;
    case 'I64': return data instanceof BigInt64Array;
    case 'I32': return data instanceof Int32Array;
    case 'I16': return data instanceof Int16Array;
    case 'I8': return data instanceof Int8Array;
    case 'U8': case 'BOOL': return data instanceof Uint8Array;
  }
}

export function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half → float32, exact. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 → float32, exact (the high half of a float32). */
export function bf16ToFloat(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/**
 * float32 → IEEE half bits, round-to-nearest-even as torch's `.half()`: subnormals are rounded,
 * values from 65520 up become infinity, NaN stays NaN. A float64 argument is first rounded to float32.
 */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: below half the smallest subnormal (2^-25) everything rounds to zero.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++; // may carry into the smallest normal: correct
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into infinity: correct
  return sign | half;
}

let halfTable: Float32Array | undefined;

/** All 65536 half values as float32, built on first use (256 KB). */
function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Any numeric dtype → float32 values (F32 input is returned as is, not copied). */
export function toFloat32(dtype: Dtype, data: TensorData): Float32Array {
  if (dtype === 'F32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'F16') {
    const table = halfToFloatTable();
    const d = data as Uint16Array;
    for (let i = 0; i < d.length; i++) out[i] = table[d[i]!]!;
  } else if (dtype === 'BF16') {
    const d = data as Uint16Array;
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < d.length; i++) bits[i] = d[i]! << 16;
  } else if (dtype === 'I64') {
    const d = data as BigInt64Array;
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!);
  } else {
    out.set(data as Exclude<TensorData, BigInt64Array>);
  }
  return out;
}

/** float32 → float16 bits, round-to-nearest-even. */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return out;
}
