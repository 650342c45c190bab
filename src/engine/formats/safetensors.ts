// safetensors: 8-byte little-endian header length, a JSON header
// ({"__metadata__": {...}, name: {dtype, shape, data_offsets}}), then raw little-endian data.
// The reader is lazy: it reads and validates the header, then reads each tensor by offset on demand,
// so a 7 GB checkpoint is never held whole. Files come from strangers, so every header field is checked
// before anything is allocated.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { EngineError } from '../errors.js';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<Dtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

/** Raw tensor data as the typed array that matches its dtype (F16/BF16 as raw Uint16 bits). */
export type TensorData =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** 100 MB of JSON is far beyond any real checkpoint's header (SDXL's is ~200 KB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses and validates a header given the file's total size. Throws EngineError('bad_safetensors') on any fault. */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, source: string): {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
} {
  const fail = (why: string): never => {
    throw new EngineError('bad_safetensors', `${source} is not a valid safetensors file: ${why}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    fail('its header is not valid UTF-8 JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('its header is not a JSON object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries(raw as object).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry !== 'object' || entry === null) fail(`entry ${name} is not an object`);
    const dtype = entry.dtype;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) fail(`tensor ${name} has unsupported dtype ${String(dtype)}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${name} has a bad shape`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor ${name} has bad data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes) fail(`tensor ${name} lies outside the file (offsets ${begin}..${end}, data ${dataBytes} bytes)`);
    const expected = numel(shape as number[]) * DTYPE_BYTES[dtype as Dtype];
    if (end - begin !== expected) fail(`tensor ${name}: ${dtype} ${JSON.stringify(shape)} needs ${expected} bytes, offsets give ${end - begin}`);
    tensors.set(name, { name, dtype: dtype as Dtype, shape: shape as number[], begin, end });
  }
  const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.begin < spans[i - 1]!.end) fail(`tensors ${spans[i - 1]!.name} and ${spans[i]!.name} overlap`);
  }
  return { tensors, metadata };
}

/** Interprets little-endian bytes as the dtype's typed array (copying into aligned memory). */
export function typedFromBytes(dtype: Dtype, bytes: Uint8Array): TensorData {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const buf = copy.buffer;
  switch (dtype) {
    case 'F64': return new Float64Array(buf);
    case 'F32': return new Float32Array(buf);
    case 'F16': case 'BF16': return new Uint16Array(buf);
    case 'I64': return new BigInt64Array(buf);
    case 'I32': return new Int32Array(buf);
    case 'I16': return new Int16Array(buf);
    case 'I8': return new Int8Array(buf);
    case 'U8': case 'BOOL': return copy;
  }
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
  u32Scratch[0] = b << 16;
  return f32Scratch[0]!;
}

/** float32 → IEEE half with round-to-nearest-even (as torch's .half()). */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/** Any numeric dtype → float32 values. */
export function toFloat32(dtype: Dtype, data: TensorData): Float32Array {
  if (dtype === 'F32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'F16') { const d = data as Uint16Array; for (let i = 0; i < d.length; i++) out[i] = halfToFloat(d[i]!); return out; }
  if (dtype === 'BF16') { const d = data as Uint16Array; for (let i = 0; i < d.length; i++) out[i] = bf16ToFloat(d[i]!); return out; }
  if (dtype === 'I64') { const d = data as BigInt64Array; for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!); return out; }
  for (let i = 0; i < data.length; i++) out[i] = Number((data as Float64Array)[i]!);
  return out;
}

/** float32 → float16 bits. */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return out;
}

/** A lazily read safetensors file. Close it when done. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly dataStart: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new EngineError('bad_safetensors', `${path} is not a valid safetensors file: it is only ${size} bytes`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
        throw new EngineError('bad_safetensors', `${path} is not a valid safetensors file: header length ${headerLen} exceeds the file or the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const n = Number(headerLen);
      const header = Buffer.alloc(n);
      readSync(fd, header, 0, n, 8);
      const { tensors, metadata } = parseHeader(header, size - 8 - n, path);
      return new SafetensorsFile(path, fd, 8 + n, tensors, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new EngineError('missing_tensor', `${this.path} has no tensor named ${name}`);
    return t;
  }

  /** The tensor's raw bytes. */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    const buf = Buffer.alloc(t.end - t.begin);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, this.dataStart + t.begin + done);
      if (n === 0) throw new EngineError('bad_safetensors', `${this.path} ended early while reading ${name}`);
      done += n;
    }
    return buf;
  }

  /** The tensor in its own dtype (F16/BF16 as raw Uint16 bits). */
  read(name: string): TensorData {
    return typedFromBytes(this.info(name).dtype, this.bytes(name));
  }

  /** The tensor converted to float32. */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    return toFloat32(t.dtype, this.read(name));
  }

  close(): void {
    closeSync(this.fd);
  }
}
