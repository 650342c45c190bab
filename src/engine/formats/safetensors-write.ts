// Writes safetensors files: 8-byte little-endian header length, the JSON header padded with spaces
// to a multiple of 8 bytes (so the data section starts aligned), then each tensor's little-endian bytes
// in the order given. Tensors may hand over their data lazily, so a multi-gigabyte file is written one
// tensor at a time.
import { open, rename, unlink } from 'node:fs/promises';
import { EngineError } from '../errors.js';
import { DTYPE_BYTES, arrayMatchesDtype, bytesOf, checkedNumel, isDtype } from './dtype.js';
import type { Dtype, TensorData } from './dtype.js';

export interface TensorToWrite {
  dtype: Dtype;
  shape: readonly number[];
  /**
   * The dtype's typed array (F16/BF16 as Uint16 bits, I64 as BigInt64Array) or its raw little-endian
   * bytes as a Uint8Array; or a function that produces it when its turn comes (so only one tensor is in memory). */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

export type TensorsToWrite = Record<string, TensorToWrite> | Iterable<readonly [string, TensorToWrite]>;

interface PlannedTensor {
  name: string;
  tensor: TensorToWrite;
  byteLength: number;
}

function badTensor(why: string): never {
  throw new EngineError('bad_tensor', `cannot write safetensors: ${why}`);
}

function entriesOf(tensors: TensorsToWrite): Iterable<readonly [string, TensorToWrite]> {
  return Symbol.iterator in tensors
    ? (tensors as Iterable<readonly [string, TensorToWrite]>)
    : Object.entries(tensors as Record<string, TensorToWrite>);
}

function plan(tensors: TensorsToWrite): PlannedTensor[] {
  const seen = new Set<string>();
  const planned: PlannedTensor[] = [];
  for (const [name, tensor] of entriesOf(tensors)) {
    if (name === '__metadata__') badTensor('a tensor cannot be named __metadata__');
    if (seen.has(name)) badTensor(`tensor ${name} is given twice`);
    seen.add(name);
    if (!isDtype(tensor.dtype)) badTensor(`tensor ${name} has unsupported dtype ${String(tensor.dtype)}`);
    const count = checkedNumel(tensor.shape);
    if (count === undefined) badTensor(`tensor ${name} has a bad shape ${JSON.stringify(tensor.shape)}`);
    planned.push({ name, tensor, byteLength: count * DTYPE_BYTES[tensor.dtype] });
  }
  return planned;
}

/** The header bytes, padded with spaces so that 8 + header length is a multiple of 8. */
function encodeHeader(planned: readonly PlannedTensor[], metadata: Readonly<Record<string, string>> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const fields = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') badTensor(`metadata ${k} is not a string`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${fields.join(',')}}`);
  }
  let offset = 0;
  for (const { name, tensor, byteLength } of planned) {
    // Built as text so that names such as "__proto__" stay ordinary keys.
    const fields = `"dtype":"${tensor.dtype}","shape":${JSON.stringify([...tensor.shape])},"data_offsets":[${offset},${offset + byteLength}]`;
    parts.push(`${JSON.stringify(name)}:{${fields}}`);
    offset += byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

function prefixFor(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  return out;
}

function checkedBytes(item: PlannedTensor, data: TensorData): Uint8Array {
  const { name, tensor, byteLength } = item;
  if (!(data instanceof Uint8Array) && !arrayMatchesDtype(tensor.dtype, data)) {
    badTensor(`tensor ${name} is ${tensor.dtype} but its data is a ${data.constructor.name}`);
  }
  if (data.byteLength !== byteLength) {
    badTensor(`tensor ${name}: ${tensor.dtype} ${JSON.stringify(tensor.shape)} needs ${byteLength} bytes, its data has ${data.byteLength}`);
  }
  return bytesOf(data);
}

/** A small safetensors file in memory. Lazy `data` functions must return synchronously here. */
export function encodeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const planned = plan(tensors);
  const prefix = prefixFor(encodeHeader(planned, metadata));
  const total = planned.reduce((sum, t) => sum + t.byteLength, prefix.byteLength);
  const out = new Uint8Array(total);
  out.set(prefix);
  let at = prefix.byteLength;
  for (const item of planned) {
    const data = typeof item.tensor.data === 'function' ? item.tensor.data() : item.tensor.data;
    if (data instanceof Promise) badTensor(`tensor ${item.name} gives its data asynchronously; use writeSafetensors`);
    out.set(checkedBytes(item, data), at);
    at += item.byteLength;
  }
  return out;
}

/**
 * Writes a safetensors file, one tensor at a time: lazy `data` functions are called in order and their
 * result dropped once written. The file appears under `path` only when complete.
 */
export async function writeSafetensors(path: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  const planned = plan(tensors);
  const prefix = prefixFor(encodeHeader(planned, metadata));
  const partial = `${path}.${process.pid}.partial`;
  const handle = await open(partial, 'w');
  try {
    let position = 0;
    const writeAll = async (bytes: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    };
    await writeAll(prefix);
    for (const item of planned) {
      const data = typeof item.tensor.data === 'function' ? await item.tensor.data() : item.tensor.data;
      await writeAll(checkedBytes(item, data));
    }
    await handle.close();
    await rename(partial, path);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(partial).catch(() => undefined);
    throw err;
  }
}
