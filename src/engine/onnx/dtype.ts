// Element types the engine's graphs use, their ONNX enum values, sizes and host arrays.
// float16 lives in Uint16Array (raw bits): Node 20 has no Float16Array (engine-prior-art.md §1.5).
import { floatToHalf, halfToFloat, toFloat16 } from '../formats/safetensors.js';

export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
export type FloatDType = 'float32' | 'float16';

/** TensorProto.DataType values (onnx.proto). */
export const ONNX_DATA_TYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export interface HostArrayOf {
  float32: Float32Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type HostArray = HostArrayOf[DType];

/** A tensor in host memory: what graphs take in and give back. */
export interface HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: HostArrayOf[D];
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float16';
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function allocate<D extends DType>(dtype: D, length: number): HostArrayOf[D] {
  const arrays: { [K in DType]: (n: number) => HostArrayOf[K] } = {
    float32: (n) => new Float32Array(n),
    float16: (n) => new Uint16Array(n),
    int64: (n) => new BigInt64Array(n),
    int32: (n) => new Int32Array(n),
    int8: (n) => new Int8Array(n),
    uint8: (n) => new Uint8Array(n),
    bool: (n) => new Uint8Array(n),
  };
  return arrays[dtype](length);
}

/** Float data in either float type → the wanted float type (fp16 rounding to nearest even). */
export function convertFloat(data: Float32Array | Uint16Array, from: FloatDType, to: FloatDType): Float32Array | Uint16Array {
  if (from === to) return data;
  if (to === 'float16') return toFloat16(data as Float32Array);
  const src = data as Uint16Array;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
  return out;
}

/** Numbers → a host array of the given type (int64 via BigInt, float16 via rounding). */
export function fromNumbers<D extends DType>(dtype: D, values: ArrayLike<number>): HostArrayOf[D] {
  const out = allocate(dtype, values.length);
  if (dtype === 'int64') {
    const o = out as BigInt64Array;
    for (let i = 0; i < values.length; i++) o[i] = BigInt(Math.trunc(values[i]!));
  } else if (dtype === 'float16') {
    const o = out as Uint16Array;
    for (let i = 0; i < values.length; i++) o[i] = floatToHalf(values[i]!);
  } else {
    const o = out as Exclude<HostArray, BigInt64Array>;
    for (let i = 0; i < values.length; i++) o[i] = values[i]!;
  }
  return out;
}

/** The dtype a host array most likely holds (Uint16Array → float16, Uint8Array → uint8). */
export function dtypeOfArray(data: HostArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'float16';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  return 'uint8';
}

/** Little-endian bytes of a host array, without copying. */
export function bytesOf(data: HostArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
