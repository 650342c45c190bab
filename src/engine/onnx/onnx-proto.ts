// The subset of onnx.proto (onnx/onnx, onnx/onnx.proto, syntax proto2) that the engine writes, as a
// protobufjs JSON descriptor. Field names and numbers are onnx.proto's; every message is proto2 so
// that optional scalars are written even when zero (ORT checks has_f()/has_i() on attributes).
// Only serialize.ts touches this module; nets never see protobuf.
import protobuf from 'protobufjs/light.js';

const proto2 = 'proto2';
const repeated = 'repeated';

const descriptor = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          edition: proto2,
          fields: {
            name: { type: 'string', id: 1 },
            ref_attr_name: { type: 'string', id: 21 },
            doc_string: { type: 'string', id: 13 },
            type: { type: 'AttributeType', id: 20 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            g: { type: 'GraphProto', id: 6 },
            floats: { rule: repeated, type: 'float', id: 7 },
            ints: { rule: repeated, type: 'int64', id: 8 },
            strings: { rule: repeated, type: 'bytes', id: 9 },
            tensors: { rule: repeated, type: 'TensorProto', id: 10 },
            graphs: { rule: repeated, type: 'GraphProto', id: 11 },
          },
          nested: {
            AttributeType: {
              values: { UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10 },
            },
          },
        },
        ValueInfoProto: {
          edition: proto2,
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'TypeProto', id: 2 },
            doc_string: { type: 'string', id: 3 },
          },
        },
        NodeProto: {
          edition: proto2,
          fields: {
            input: { rule: repeated, type: 'string', id: 1 },
            output: { rule: repeated, type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            op_type: { type: 'string', id: 4 },
            domain: { type: 'string', id: 7 },
            attribute: { rule: repeated, type: 'AttributeProto', id: 5 },
            doc_string: { type: 'string', id: 6 },
          },
        },
        ModelProto: {
          edition: proto2,
          fields: {
            ir_version: { type: 'int64', id: 1 },
            opset_import: { rule: repeated, type: 'OperatorSetIdProto', id: 8 },
            producer_name: { type: 'string', id: 2 },
            producer_version: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            model_version: { type: 'int64', id: 5 },
            doc_string: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            metadata_props: { rule: repeated, type: 'StringStringEntryProto', id: 14 },
          },
        },
        StringStringEntryProto: {
          edition: proto2,
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        GraphProto: {
          edition: proto2,
          fields: {
            node: { rule: repeated, type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: repeated, type: 'TensorProto', id: 5 },
            doc_string: { type: 'string', id: 10 },
            input: { rule: repeated, type: 'ValueInfoProto', id: 11 },
            output: { rule: repeated, type: 'ValueInfoProto', id: 12 },
            value_info: { rule: repeated, type: 'ValueInfoProto', id: 13 },
          },
        },
        TensorProto: {
          edition: proto2,
          fields: {
            dims: { rule: repeated, type: 'int64', id: 1 },
            data_type: { type: 'int32', id: 2 },
            float_data: { rule: repeated, type: 'float', id: 4, options: { packed: true } },
            int32_data: { rule: repeated, type: 'int32', id: 5, options: { packed: true } },
            string_data: { rule: repeated, type: 'bytes', id: 6 },
            int64_data: { rule: repeated, type: 'int64', id: 7, options: { packed: true } },
            name: { type: 'string', id: 8 },
            doc_string: { type: 'string', id: 12 },
            raw_data: { type: 'bytes', id: 9 },
            external_data: { rule: repeated, type: 'StringStringEntryProto', id: 13 },
            data_location: { type: 'DataLocation', id: 14 },
            double_data: { rule: repeated, type: 'double', id: 10, options: { packed: true } },
            uint64_data: { rule: repeated, type: 'uint64', id: 11, options: { packed: true } },
          },
          nested: {
            DataLocation: { values: { DEFAULT: 0, EXTERNAL: 1 } },
          },
        },
        TensorShapeProto: {
          edition: proto2,
          fields: {
            dim: { rule: repeated, type: 'Dimension', id: 1 },
          },
          nested: {
            Dimension: {
              edition: proto2,
              oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
              fields: {
                dim_value: { type: 'int64', id: 1 },
                dim_param: { type: 'string', id: 2 },
                denotation: { type: 'string', id: 3 },
              },
            },
          },
        },
        TypeProto: {
          edition: proto2,
          oneofs: { value: { oneof: ['tensor_type'] } },
          fields: {
            tensor_type: { type: 'Tensor', id: 1 },
            denotation: { type: 'string', id: 6 },
          },
          nested: {
            Tensor: {
              edition: proto2,
              fields: {
                elem_type: { type: 'int32', id: 1 },
                shape: { type: 'TensorShapeProto', id: 2 },
              },
            },
          },
        },
        OperatorSetIdProto: {
          edition: proto2,
          fields: {
            domain: { type: 'string', id: 1 },
            version: { type: 'int64', id: 2 },
          },
        },
      },
    },
  },
};

/** AttributeProto.AttributeType values. */
export const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;
export const DATA_LOCATION_EXTERNAL = 1;

// Plain-object shapes of the messages written (snake_case, as in onnx.proto).
export interface StringStringEntry { key: string; value: string }
export interface TensorProtoInit {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  external_data?: StringStringEntry[];
  data_location?: number;
}
export interface AttributeProtoInit {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProtoInit;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}
export interface NodeProtoInit {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain?: string;
  attribute: AttributeProtoInit[];
}
export interface DimensionInit { dim_value?: number; dim_param?: string }
export interface ValueInfoProtoInit {
  name: string;
  type: { tensor_type: { elem_type: number; shape: { dim: DimensionInit[] } } };
}
export interface GraphProtoInit {
  name: string;
  node: NodeProtoInit[];
  initializer: TensorProtoInit[];
  input: ValueInfoProtoInit[];
  output: ValueInfoProtoInit[];
  doc_string?: string;
}
export interface ModelProtoInit {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  graph: GraphProtoInit;
  metadata_props?: StringStringEntry[];
}

let modelType: protobuf.Type | undefined;
function modelProto(): protobuf.Type {
  modelType ??= protobuf.Root.fromJSON(descriptor).lookupType('onnx.ModelProto');
  return modelType;
}

export function encodeModelProto(model: ModelProtoInit): Uint8Array {
  return modelProto().encode(model).finish();
}

/** Decodes a model into plain objects (int64 as numbers, bytes as Uint8Array); used by tests and tools. */
export function decodeModelProto(bytes: Uint8Array): ModelProtoInit {
  const type = modelProto();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true }) as ModelProtoInit;
}
