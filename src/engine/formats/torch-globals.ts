// The only Python names a torch state dict may reference, each with a pure TypeScript stand-in.
// Mirrors the spirit of torch's own weights_only unpickler: dicts, tensors, storages and nothing else.
// A name outside this list is refused before anything is built; nothing is ever imported or run.
import { EngineError } from '../errors.js';
import type { Dtype } from './dtype.js';
import { PyDict, PyExtension, PyGlobal, PyList, PyTuple, describe } from './pickle.js';
import type { PyValue } from './pickle.js';

/** A storage class (torch.FloatStorage, ...): only meaningful inside a persistent id. */
export class TorchStorageType extends PyGlobal {
  constructor(qualname: string, readonly dtype: Dtype) {
    super(qualname);
  }
}

/** One blob `data/<key>` of the archive, seen as `numel` elements of `dtype`. */
export class TorchStorage extends PyExtension {
  constructor(readonly key: string, readonly dtype: Dtype, readonly numel: number) {
    super();
  }

  get description(): string {
    return `storage ${this.key}`;
  }
}

/** A tensor view: `shape` elements of `storage`, starting at `offset`, stepping by `stride` (all in elements). */
export class TorchTensor extends PyExtension {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {
    super();
  }

  get description(): string {
    return `tensor ${JSON.stringify(this.shape)}`;
  }
}

const STORAGE_DTYPES: Record<string, Dtype> = {
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};

function malformed(source: string, why: string): never {
  throw new EngineError('bad_pickle', `${source} holds a malformed pickle: ${why}`);
}

/** A tuple of non-negative safe integers (a size or a stride), or a described fault. */
function intTuple(value: PyValue | undefined, what: string, source: string): number[] {
  const items = value instanceof PyTuple ? value.items : malformed(source, `a tensor's ${what} is a ${describe(value ?? null)}, not a tuple`);
  return items.map((v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : malformed(source, `a tensor's ${what} holds ${String(v)}`)));
}

function rebuildTensor(args: readonly PyValue[], source: string): TorchTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorage)) return malformed(source, `a tensor is built from a ${describe(storage ?? null)}, not a storage`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return malformed(source, `a tensor has storage offset ${String(offset)}`);
  const shape = intTuple(size, 'size', source);
  const strides = intTuple(stride, 'stride', source);
  if (shape.length !== strides.length) malformed(source, `a tensor has ${shape.length} sizes but ${strides.length} strides`);
  return new TorchTensor(storage, offset, shape, strides);
}

function firstTensor(args: readonly PyValue[], source: string): TorchTensor {
  const data = args[0];
  return data instanceof TorchTensor ? data : malformed(source, `a parameter wraps a ${describe(data ?? null)}, not a tensor`);
}

function orderedDict(args: readonly PyValue[], source: string): PyDict {
  const dict = new PyDict();
  const pairs = args[0];
  if (pairs === undefined) return dict;
  const items = pairs instanceof PyList || pairs instanceof PyTuple ? pairs.items : malformed(source, 'OrderedDict is given a non-sequence');
  for (const pair of items) {
    if (!(pair instanceof PyTuple) || pair.items.length !== 2) malformed(source, 'OrderedDict is given something other than pairs');
    dict.map.set(pair.items[0]!, pair.items[1]!);
  }
  return dict;
}

/** `_codecs.encode(text, 'latin1')`: how protocol 2 spells a bytes object. */
function encodeText(args: readonly PyValue[], source: string): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string') return malformed(source, '_codecs.encode is given a non-string');
  if (encoding === 'utf-8' || encoding === 'utf8') return new TextEncoder().encode(text);
  if (encoding !== 'latin1' && encoding !== 'latin-1') return malformed(source, `_codecs.encode asks for encoding ${String(encoding)}`);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) malformed(source, '_codecs.encode is given a character outside latin-1');
    out[i] = c;
  }
  return out;
}

/** Returns the stand-in for an allowlisted global, or throws EngineError('unsafe_pickle') naming it. */
export function torchGlobal(module: string, name: string, source: string): PyGlobal {
  const qualname = `${module}.${name}`;
  const call = (fn: (args: readonly PyValue[], source: string) => PyValue): PyGlobal => new PyGlobal(qualname, (args) => fn(args, source));
  if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return new TorchStorageType(qualname, STORAGE_DTYPES[name]!);
  switch (qualname) {
    case 'collections.OrderedDict': return call(orderedDict);
    case 'torch._utils._rebuild_tensor': // torch < 1.1
    case 'torch._utils._rebuild_tensor_v2': return call(rebuildTensor);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': return call(firstTensor);
    case 'torch._tensor._rebuild_from_type_v2': // (func, new_type, args, state): a Tensor subclass such as Parameter
      return call((args, src) => {
        const [func, , inner] = args;
        if (!(func instanceof PyGlobal) || !func.call || !(inner instanceof PyTuple)) return malformed(src, '_rebuild_from_type_v2 is given no rebuild function');
        return func.call(inner.items);
      });
    case 'torch.Tensor':
    case 'torch.nn.parameter.Parameter': return new PyGlobal(qualname);
    case 'torch.Size': return call((args, src) => (args[0] instanceof PyTuple ? args[0] : malformed(src, 'torch.Size is given a non-tuple')));
    case '_codecs.encode': return call(encodeText);
  }
  const why = module === 'torch' || module.startsWith('torch.')
    ? 'which this reader does not support (it reads plain tensors, storages and dicts)'
    : 'which a weight file never needs (only tensors, storages and dicts are allowed)';
  throw new EngineError('unsafe_pickle', `refusing to load ${source}: it references ${qualname}, ${why}; nothing in it was run`);
}
