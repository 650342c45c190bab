// One read-only view over the weight files users have: .safetensors and torch.save .bin/.pt/.ckpt,
// told apart by their first bytes (never by extension, which users rename freely). Whether a pickle
// from a URL may be loaded at all is the caller's policy; this module only parses safely.
import { openSync, closeSync } from 'node:fs';
import { EngineError } from '../errors.js';
import type { Dtype, TensorData } from './dtype.js';
import { readFully } from './file-io.js';
import type { WeightSource } from './keymaps/source.js';
import { SafetensorsFile } from './safetensors.js';
import { TorchCheckpoint } from './torch-pickle.js';

export type WeightsFormat = 'safetensors' | 'torch-zip';

/** An open weight file: a WeightSource over its tensors, to be closed. */
export interface WeightsFile extends WeightSource {
  readonly path: string;
  readonly format: WeightsFormat;
  close(): void;
}

export type SniffedFormat = WeightsFormat | 'torch-legacy' | 'unknown';

/** Classifies a file by its first 16 bytes. */
export function sniffWeightsFormat(head: Uint8Array): SniffedFormat {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'torch-zip';
  // 8-byte header length, then the JSON header's '{' (a damaged one is still routed to the safetensors reader's errors).
  if (head.length >= 9 && head[8] === 0x7b) return 'safetensors';
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) return 'torch-legacy'; // a bare pickle stream
  return 'unknown';
}

/** What SafetensorsFile and TorchCheckpoint both offer. */
interface TensorFileReader {
  names(): string[];
  has(name: string): boolean;
  info(name: string): { dtype: Dtype; shape: readonly number[] };
  read(name: string): TensorData;
  readFloat32(name: string): Float32Array;
  close(): void;
}

function asWeightsFile(path: string, format: WeightsFormat, file: TensorFileReader): WeightsFile {
  return {
    path, format,
    names: () => file.names(),
    has: (name) => file.has(name),
    info: (name) => { const { dtype, shape } = file.info(name); return { dtype, shape: [...shape] }; },
    read: (name) => file.read(name),
    readFloat32: (name) => file.readFloat32(name),
    close: () => file.close(),
  };
}

/** Opens a weight file as a WeightsFile, choosing the reader by magic bytes. */
export function openWeights(path: string): WeightsFile {
  const fd = openSync(path, 'r');
  let head: Uint8Array;
  try {
    head = new Uint8Array(16);
    head = head.subarray(0, readFully(fd, head, 0));
  } finally {
    closeSync(fd);
  }
  const format = sniffWeightsFormat(head);
  switch (format) {
    case 'safetensors':
      return asWeightsFile(path, format, SafetensorsFile.open(path));
    case 'torch-zip':
      return asWeightsFile(path, format, TorchCheckpoint.open(path));
    case 'torch-legacy':
      throw new EngineError('unsupported_weights', `${path} is in torch's legacy (before 1.6) checkpoint format, which Likeness does not read: ` +
        're-save it with a recent torch (torch.save(torch.load(f), f)) or convert it to safetensors');
    case 'unknown':
      throw new EngineError('unsupported_weights', `${path} is neither a safetensors file nor a torch checkpoint (its first bytes match neither)`);
  }
}
