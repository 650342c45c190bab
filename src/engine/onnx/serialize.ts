// ModelDef → ONNX ModelProto bytes. Small models carry their weights inline; large ones keep them in
// external data files next to the .onnx (protobuf caps a message at 2 GiB; ORT finds external data
// only when the session is created from the file path, engine-prior-art.md §1.4). Weights are
// loaded one at a time and written straight to disk, so a model never sits in memory twice.
import { open, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { endianness } from 'node:os';
import { EngineError } from '../errors.js';
import { ONNX_DATA_TYPE, bytesOf } from './dtype.js';
import type { Attr, InitializerDef, ModelDef, NodeDef, ValueDef } from './graph-core.js';
import {
  ATTRIBUTE_TYPE, DATA_LOCATION_EXTERNAL, encodeModelProto,
  type AttributeProtoInit, type ModelProtoInit, type NodeProtoInit, type TensorProtoInit, type ValueInfoProtoInit,
} from './onnx-proto.js';

export const IR_VERSION = 10;
const PROTOBUF_LIMIT = 2 ** 31 - 1;
const MiB = 2 ** 20;

export interface WriteOptions {
  /** Total weight bytes above which weights go to external data. Default 256 MiB. */
  externalDataThreshold?: number;
  /** In external mode, tensors below this many bytes stay inline. Default 1 KiB. */
  minExternalBytes?: number;
  /** Largest external data file; each stays under 4 GiB (Node's Buffer cap). Default 2 GiB. */
  maxDataFileBytes?: number;
}

export interface WrittenModel {
  readonly modelPath: string;
  /** External data files, beside the model (empty when inline). */
  readonly dataFiles: readonly string[];
  readonly modelBytes: number;
  readonly dataBytes: number;
}

/** The whole model as one protobuf, weights inline. */
export async function encodeModel(model: ModelDef): Promise<Uint8Array> {
  const total = weightBytes(model);
  if (total > PROTOBUF_LIMIT - 64 * MiB) {
    throw new EngineError('onnx_model_too_large', `model ${model.name} has ${total} bytes of weights; write it with external data (writeModel)`);
  }
  const initializer: TensorProtoInit[] = [];
  for (const init of model.initializers) initializer.push(inlineTensor(init, await init.load()));
  return encodeModelProto(modelProto(model, initializer));
}

/** Writes `modelPath` (+ external data files when the weights exceed the threshold). */
export async function writeModel(model: ModelDef, modelPath: string, options: WriteOptions = {}): Promise<WrittenModel> {
  const threshold = options.externalDataThreshold ?? 256 * MiB;
  if (weightBytes(model) <= threshold) {
    const bytes = await encodeModel(model);
    await writeFile(modelPath, bytes);
    return { modelPath, dataFiles: [], modelBytes: bytes.byteLength, dataBytes: 0 };
  }
  const minExternal = options.minExternalBytes ?? 1024;
  const maxFile = Math.min(options.maxDataFileBytes ?? 2 ** 31, 4 * 2 ** 30 - 1);
  const writer = new DataWriter(dirname(modelPath), basename(modelPath), maxFile);
  const initializer: TensorProtoInit[] = [];
  try {
    for (const init of model.initializers) {
      const data = await init.load();
      if (init.byteLength < minExternal) {
        initializer.push(inlineTensor(init, data));
        continue;
      }
      const where = await writer.append(init.name, bytesOf(data));
      initializer.push({
        name: init.name,
        dims: [...init.dims],
        data_type: ONNX_DATA_TYPE[init.dtype],
        data_location: DATA_LOCATION_EXTERNAL,
        external_data: [
          { key: 'location', value: where.location },
          { key: 'offset', value: String(where.offset) },
          { key: 'length', value: String(where.length) },
        ],
      });
    }
  } finally {
    await writer.close();
  }
  const bytes = encodeModelProto(modelProto(model, initializer));
  await writeFile(modelPath, bytes);
  return { modelPath, dataFiles: writer.files.map((f) => join(dirname(modelPath), f)), modelBytes: bytes.byteLength, dataBytes: writer.total };
}

export function weightBytes(model: ModelDef): number {
  return model.initializers.reduce((s, i) => s + i.byteLength, 0);
}

/** Appends tensors to data files, each aligned for mmap and each file under the size cap. */
class DataWriter {
  readonly files: string[] = [];
  total = 0;
  private handle: import('node:fs/promises').FileHandle | undefined;
  private offset = 0;

  constructor(private readonly dir: string, private readonly base: string, private readonly maxFile: number) {}

  async append(name: string, bytes: Uint8Array): Promise<{ location: string; offset: number; length: number }> {
    if (bytes.byteLength > this.maxFile) {
      throw new EngineError('onnx_tensor_too_large', `tensor ${name} (${bytes.byteLength} bytes) exceeds the data file limit ${this.maxFile}`);
    }
    // 64 KiB alignment for big tensors (Windows' mmap granularity), the page size for the rest.
    const align = bytes.byteLength > MiB ? 65536 : 4096;
    let offset = Math.ceil(this.offset / align) * align;
    if (!this.handle || offset + bytes.byteLength > this.maxFile) {
      await this.close();
      const file = this.files.length === 0 ? `${this.base}.data` : `${this.base}.${this.files.length}.data`;
      this.handle = await open(join(this.dir, file), 'w');
      this.files.push(file);
      offset = 0;
    }
    let written = 0;
    while (written < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, written, bytes.byteLength - written, offset + written);
      written += bytesWritten;
    }
    this.offset = offset + bytes.byteLength;
    this.total += bytes.byteLength;
    return { location: this.files[this.files.length - 1]!, offset, length: bytes.byteLength };
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await h.close();
  }
}

function inlineTensor(init: InitializerDef, data: Parameters<typeof bytesOf>[0]): TensorProtoInit {
  if (endianness() !== 'LE') throw new EngineError('onnx_big_endian', 'ONNX raw data is little-endian; this host is big-endian');
  if (data.byteLength !== init.byteLength) {
    throw new Error(`initializer ${init.name}: ${data.byteLength} bytes, expected ${init.byteLength}`);
  }
  return { name: init.name, dims: [...init.dims], data_type: ONNX_DATA_TYPE[init.dtype], raw_data: bytesOf(data) };
}

function modelProto(model: ModelDef, initializer: TensorProtoInit[]): ModelProtoInit {
  return {
    ir_version: IR_VERSION,
    opset_import: model.opsets.map((o) => ({ domain: o.domain, version: o.version })),
    producer_name: 'likeness',
    producer_version: '0.1.0',
    graph: {
      name: model.name,
      node: model.nodes.map(nodeProto),
      initializer,
      input: model.inputs.map(valueInfo),
      output: model.outputs.map(valueInfo),
    },
    metadata_props: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  };
}

function valueInfo(v: ValueDef): ValueInfoProtoInit {
  // '?' is an unknown dim (no field set): a shared dim_param would claim the dims are equal.
  const dim = v.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : d === '?' ? {} : { dim_param: d }));
  return { name: v.name, type: { tensor_type: { elem_type: ONNX_DATA_TYPE[v.dtype], shape: { dim } } } };
}

const utf8 = new TextEncoder();

function nodeProto(n: NodeDef): NodeProtoInit {
  const node: NodeProtoInit = {
    input: [...n.inputs],
    output: [...n.outputs],
    name: n.name,
    op_type: n.opType,
    attribute: Object.entries(n.attrs).map(([name, a]) => attributeProto(name, a)),
  };
  if (n.domain !== '') node.domain = n.domain;
  return node;
}

function attributeProto(name: string, a: Attr): AttributeProtoInit {
  switch (a.kind) {
    case 'float': return { name, type: ATTRIBUTE_TYPE.FLOAT, f: a.value };
    case 'int': return { name, type: ATTRIBUTE_TYPE.INT, i: a.value };
    case 'string': return { name, type: ATTRIBUTE_TYPE.STRING, s: utf8.encode(a.value) };
    case 'floats': return { name, type: ATTRIBUTE_TYPE.FLOATS, floats: [...a.value] };
    case 'ints': return { name, type: ATTRIBUTE_TYPE.INTS, ints: [...a.value] };
  }
}
