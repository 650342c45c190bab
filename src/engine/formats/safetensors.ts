// safetensors: 8-byte little-endian header length, a JSON header
// ({"__metadata__": {...}, name: {dtype, shape, data_offsets}}), then raw little-endian data.
// The reader is lazy: it reads and validates the header, then reads each tensor by offset on demand,
// so a 7 GB checkpoint is never held whole. Files come from strangers, so every header field is checked
// before anything is allocated. The writer lives in safetensors-write.ts.
import { openSync, closeSync, fstatSync } from 'node:fs';
import { EngineError } from '../errors.js';
import { DTYPE_BYTES, checkedNumel, isDtype, toFloat32, viewAs } from './dtype.js';
import type { Dtype, TensorData } from './dtype.js';
import { readExact, readFully } from './file-io.js';

export { DTYPE_BYTES, numel, typedFromBytes, halfToFloat, bf16ToFloat, floatToHalf, toFloat32, toFloat16 } from './dtype.js';
export type { Dtype, TensorData, HostTensor } from './dtype.js';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

/** 100 MB of JSON is far beyond any real checkpoint's header (SDXL's is ~200 KB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and validates a header given the size of the data section. Throws EngineError('bad_safetensors') on any fault. */
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
  if (!isPlainObject(json)) return fail('its header is not a JSON object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) return fail('__metadata__ is not an object');
      // The format says string → string; tolerate other JSON values by keeping their JSON text.
      metadata = Object.fromEntries(
        Object.entries(entry).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
      );
      continue;
    }
    if (!isPlainObject(entry)) return fail(`entry ${name} is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDtype(dtype)) return fail(`tensor ${name} has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return fail(`tensor ${name} has a bad shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(`tensor ${name} has bad data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes) {
      return fail(`tensor ${name} lies outside the file (offsets ${begin}..${end}, data section ${dataBytes} bytes; truncated?)`);
    }
    const count = checkedNumel(shape as number[]);
    const expected = count === undefined ? undefined : count * DTYPE_BYTES[dtype];
    if (expected !== end - begin) {
      return fail(`tensor ${name}: ${dtype} ${JSON.stringify(shape)} needs ${expected ?? 'too many'} bytes, offsets give ${end - begin}`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  const spans = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.begin < spans[i - 1]!.end) return fail(`tensors ${spans[i - 1]!.name} and ${spans[i]!.name} overlap`);
  }
  return { tensors, metadata };
}

/** A lazily read safetensors file. Close it when done. */
export class SafetensorsFile {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly dataStart: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static open(path: string): SafetensorsFile {
    const fail = (why: string): never => {
      throw new EngineError('bad_safetensors', `${path} is not a valid safetensors file: ${why}`);
    };
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) fail(`it is only ${size} bytes`);
      const lenBytes = readExact(fd, 8, 0, () => fail('it ended inside the header length'));
      const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (headerLen > BigInt(size - 8)) fail(`its header length ${headerLen} runs past the end of the ${size}-byte file`);
      if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(`its header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      const n = Number(headerLen);
      const header = readExact(fd, n, 8, () => fail('it ended inside the header'));
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

  /** The tensor's raw little-endian bytes, in fresh 8-byte-aligned memory. */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.closed) throw new EngineError('closed', `${this.path} was closed before reading ${name}`);
    return readExact(this.fd, t.end - t.begin, this.dataStart + t.begin, () => {
      throw new EngineError('bad_safetensors', `${this.path} ended early while reading ${name} (was it truncated after opening?)`);
    });
  }

  /**
   * Reads the tensor's raw bytes into the start of `target` and returns that part, allocating nothing:
   * for callers that stream many tensors through one buffer (fresh memory costs a page fault per 4 KB).
   */
  readInto(name: string, target: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (this.closed) throw new EngineError('closed', `${this.path} was closed before reading ${name}`);
    const length = t.end - t.begin;
    if (target.byteLength < length) throw new RangeError(`${name} needs ${length} bytes, the target has ${target.byteLength}`);
    const out = target.subarray(0, length);
    if (readFully(this.fd, out, this.dataStart + t.begin) !== length) {
      throw new EngineError('bad_safetensors', `${this.path} ended early while reading ${name} (was it truncated after opening?)`);
    }
    return out;
  }

  /** The tensor in its own dtype (F16/BF16 as raw Uint16 bits). */
  read(name: string): TensorData {
    return viewAs(this.info(name).dtype, this.bytes(name));
  }

  /** The tensor converted to float32. */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.info(name).dtype, this.read(name));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
